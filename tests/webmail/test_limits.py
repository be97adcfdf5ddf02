"""The request-body limit in front of Django (webmail.limits.BodySizeLimit)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.webmail.daphne import daphne_serving
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


# The same limit on a real socket, against daphne as the web role runs it: refused where the
# bytes arrive, not after daphne has stored the whole body (webmail.daphne_limit).

LIVE_LIMIT = 100_000


@pytest.fixture(scope="module")
def daphne_port() -> Iterator[int]:
    env = {**os.environ, "MAX_REQUEST_BODY": str(LIVE_LIMIT), "DJANGO_SETTINGS_MODULE": "webmail.settings"}
    with daphne_serving(env) as port:
        yield port


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes its side (a timeout fails the test)."""
    out = b""
    while chunk := conn.recv(65536):
        out += chunk
    return out


def _head(extra: str) -> bytes:
    return ("POST /compose/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            + extra + "\r\n").encode()


def test_daphne_answers_413_at_the_headers_before_any_body_is_sent(daphne_port: int) -> None:
    with _connect(daphne_port) as conn:
        # Only the headers: a server that waited for the body would never answer.
        conn.sendall(_head(f"Content-Length: {10 * 1024 ** 3}\r\n"))
        reply = _read_all(conn)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert b"Connection: close" in reply and b"larger than this server accepts (0.1 MB)" in reply


def test_daphne_answers_413_instead_of_100_continue(daphne_port: int) -> None:
    with _connect(daphne_port) as conn:
        conn.sendall(_head(f"Content-Length: {LIVE_LIMIT + 1}\r\nExpect: 100-continue\r\n"))
        reply = _read_all(conn)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in reply


def test_daphne_cuts_a_chunked_body_off_once_it_passes_the_limit(daphne_port: int) -> None:
    chunk = b"x" * 30_000
    with _connect(daphne_port) as conn:
        conn.sendall(_head("Transfer-Encoding: chunked\r\n"))
        for _ in range(4):  # 120,000 bytes, and never the last chunk
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        reply = _read_all(conn)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]


def test_daphne_drops_the_rest_of_a_refused_body_so_the_client_reads_the_answer(daphne_port: int) -> None:
    size = 20 * LIVE_LIMIT
    with _connect(daphne_port) as conn:
        conn.sendall(_head(f"Content-Length: {size}\r\n") + b"\0" * size)
        reply = _read_all(conn)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"larger than this server accepts" in reply


def test_daphne_passes_a_body_within_the_limit_to_django(daphne_port: int) -> None:
    body = b"x" * (LIVE_LIMIT - 10)
    with _connect(daphne_port) as conn:
        conn.sendall(_head(f"Content-Length: {len(body)}\r\nConnection: close\r\n") + body)
        reply = _read_all(conn)
    assert reply.startswith(b"HTTP/1.1 403 "), reply[:200]  # Django's CSRF check: it got that far
