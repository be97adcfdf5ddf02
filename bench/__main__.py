"""Run benchmarks by name: ``python -m bench [NAME ...] [--quick]``; no name runs them all.

Each benchmark is a module ``bench.<name>`` with ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["store", "smtp", "relay", "imap", "pop3", "web"]


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or BENCHMARKS
    flags = [a for a in argv if a.startswith("-")]
    status = 0
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"== {name}: not available in this build", flush=True)
                continue
            raise
        print(f"== {name}", flush=True)
        status = max(status, int(module.main(flags)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
