"""An ASGI middleware that refuses oversized request bodies before Django reads them.

A declared ``Content-Length`` over the limit is answered with 413 at once, without reading a
byte of the body; a body without one (chunked) is counted as it arrives and cut off with 413
as soon as it passes the limit. Django itself would spool the whole body to disk first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]  # Django's handler types its arguments its own way


def too_large_body(limit: int) -> bytes:
    megabytes = limit / (1024 * 1024)
    return (f"The request is larger than this server accepts ({megabytes:.1f} MB). Nothing was sent; "
            "go back: what you typed is still in the form.\n").encode()


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit  # read per request, so settings overrides in tests apply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if declared:
            length = int(declared[0]) if len(declared) == 1 and declared[0].isdigit() else None
            if length is None:
                await _plain(send, 400, b"Bad Content-Length.\n")
            elif length > limit:
                await _plain(send, 413, too_large_body(limit))
            else:
                await self.app(scope, receive, send)
            return

        received = 0
        cut = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True  # Django sees a client that went away and answers nothing
                    return {"type": "http.disconnect"}
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, watching_send)
        if cut and not started:
            await _plain(send, 413, too_large_body(limit))


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
