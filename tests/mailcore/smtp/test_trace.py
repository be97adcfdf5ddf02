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


def test_received_stamp_is_the_moment_of_the_message_whatever_came_before() -> None:
    """The date-time text is formatted once per second: messages of one second share it, and a
    message of another second, later or earlier, gets its own."""
    import datetime
    import email.utils

    from mailcore.smtp.trace import received_header

    def stamp(moment: float) -> str:
        header = received_header(helo="c.test", client_ip="192.0.2.1", by_host="mx.test", protocol="ESMTP",
                                 queue_id="Q", tls=None, recipient="a@b.test", date=moment)
        return header.rsplit("; ", 1)[1].strip()

    def expected(moment: float) -> str:
        return email.utils.format_datetime(datetime.datetime.fromtimestamp(int(moment), datetime.UTC))

    for moment in [1_800_000_000.2, 1_800_000_000.9, 1_800_000_001.0, 1_700_000_000.5, 1_800_000_000.0]:
        assert stamp(moment) == expected(moment)
    assert stamp(1_800_000_000.9) == "Fri, 15 Jan 2027 08:00:00 +0000"
    now = received_header(helo="c.test", client_ip="192.0.2.1", by_host="mx.test", protocol="ESMTP",
                          queue_id="Q", tls=None, recipient=None)
    sent = email.utils.parsedate_to_datetime(now.rsplit(";", 1)[1].strip())
    assert abs((sent - datetime.datetime.now(datetime.UTC)).total_seconds()) < 5
