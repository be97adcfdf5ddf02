"""Queue ids: distinct, 12 hex digits, and not repeated by a forked worker."""

from __future__ import annotations

import os
import re

from mailcore.smtp.trace import new_queue_id


def test_queue_ids_are_twelve_hex_digits_and_distinct() -> None:
    ids = [new_queue_id() for _ in range(20000)]
    assert all(re.fullmatch(r"[0-9A-F]{12}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first ids, as a worker process would make them
        os.write(write, "".join(new_queue_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 60).decode()
    os.close(read)
    parent = "".join(new_queue_id() for _ in range(5))  # what an unseeded child would have made
    assert len(child) == 60 and child != parent
