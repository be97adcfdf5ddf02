"""Shutting a database thread pool down while a job is still running."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailcore.dbthreads import executor_close


def test_a_job_still_running_does_not_make_shutdown_fail(caplog: pytest.LogCaptureFixture) -> None:
    executor = ThreadPoolExecutor(max_workers=1)  # its one thread busy: the closing job waits
    release = threading.Event()
    started = threading.Event()

    def long_job() -> str:
        started.set()
        release.wait(10)
        return "done"

    busy = executor.submit(long_job)
    assert started.wait(5)
    with caplog.at_level(logging.WARNING, logger="mailcore.dbthreads"):
        executor_close(executor, 1, timeout=0.2)  # returns, where it raised TimeoutError
    assert "still busy" in caplog.text
    release.set()
    assert busy.result(5) == "done"  # the job was left to finish, not cancelled
    executor.shutdown(wait=True)  # and its thread then ran its closing job and ended
