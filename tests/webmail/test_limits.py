"""The request-body limit in front of Django (webmail.limits.BodySizeLimit)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from webmail.limits import BodySizeLimit

LIMIT = 1000


def _run(coro: Any) -> Any:
    """asyncio.run in a thread of its own: Playwright's sync API may own this thread's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=30)


class Recorder:
    """An inner app that reads the whole body (as Django does) and answers 200."""

    def __init__(self) -> None:
        self.called = False
        self.read = 0
        self.aborted = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.aborted = True
                return  # as Django's ASGIHandler does on RequestAborted: no response
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _request(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[Any], int]:
    """Drive ``app`` with one HTTP request; returns what it sent and how many chunks it pulled."""
    scope = {"type": "http", "method": "POST", "path": "/compose/", "headers": headers, "query_string": b""}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    pulled = 0
    sent: list[Any] = []

    async def receive() -> Any:
        nonlocal pulled
        if pulled < len(pending):
            pulled += 1
            return pending[pulled - 1]
        await asyncio.sleep(3600)  # a client that never sends the rest

    async def send(message: Any) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent, pulled


def test_a_declared_length_over_the_limit_gets_413_before_any_body_is_read() -> None:
    inner = Recorder()
    app = BodySizeLimit(inner, limit=lambda: LIMIT)
    # The client announces 10 GB and has sent nothing yet: the answer comes at once.
    sent, pulled = _run(_request(app, [(b"content-length", b"10000000000")], [b"x" * 10]))
    assert sent[0]["status"] == 413 and b"larger than this server accepts" in sent[1]["body"]
    assert pulled == 0 and not inner.called


def test_a_body_within_the_limit_reaches_the_app() -> None:
    inner = Recorder()
    app = BodySizeLimit(inner, limit=lambda: LIMIT)
    sent, _ = _run(_request(app, [(b"content-length", b"1000")], [b"x" * 500, b"y" * 500]))
    assert sent[0]["status"] == 200 and inner.read == 1000


def test_a_chunked_body_is_cut_off_when_it_passes_the_limit() -> None:
    inner = Recorder()
    app = BodySizeLimit(inner, limit=lambda: LIMIT)
    sent, pulled = _run(_request(app, [(b"transfer-encoding", b"chunked")], [b"x" * 600] * 100))
    assert inner.aborted and pulled == 2  # stopped at the chunk that passed 1000 bytes
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


def test_a_bad_content_length_is_refused() -> None:
    for headers in ([(b"content-length", b"-5")], [(b"content-length", b"12abc")],
                    [(b"content-length", b"5"), (b"content-length", b"10")]):
        inner = Recorder()
        sent, _ = _run(_request(BodySizeLimit(inner, limit=lambda: LIMIT), headers, [b"hello"]))
        assert sent[0]["status"] == 400 and not inner.called


def test_the_web_role_applies_the_limit_from_settings(settings: Any) -> None:
    """The real ASGI application, Django behind it: an oversized upload never reaches a view."""
    from webmail.asgi import application

    settings.MAX_REQUEST_BODY = 2048
    sent, pulled = _run(_request(application, [(b"content-length", b"4096"), (b"host", b"testserver")], [b"x" * 4096]))
    assert sent[0]["status"] == 413 and pulled == 0


def test_websockets_pass_through() -> None:
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    _run(BodySizeLimit(inner, limit=lambda: LIMIT)({"type": "websocket"}, None, None))  # type: ignore[arg-type]
    assert seen == ["websocket"]
