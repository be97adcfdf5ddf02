"""``python -m bench [NAME [args...]]``: run one benchmark, or every known one with no NAME."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["relay"]


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench [{'|'.join(BENCHMARKS)}] [args...]")
        return 0
    names = [argv[0]] if argv else BENCHMARKS
    rest = argv[1:] if argv else []
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"bench.{name}")
        code = module.main(rest)
        if code:
            return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
