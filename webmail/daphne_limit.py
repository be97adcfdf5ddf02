"""The request-body limit inside daphne, where the bytes arrive.

daphne (through Twisted's ``HTTPChannel``) reads a request's whole body, into memory or a
temporary file, before it calls the ASGI application: ``webmail.limits.BodySizeLimit`` then
refuses a 10 GB upload only after the 10 GB have been received and written to disk. This
request class answers 413 as soon as the headers declare a ``Content-Length`` over the limit
(before a byte of the body is read, and instead of ``100 Continue`` to a client that asked),
and as soon as a body without one (chunked) passes it; the rest of a refused body is read and
dropped, never stored, for at most ``LINGER_SECONDS``, so the client can read the answer
instead of a connection reset, then the connection is closed.

``install`` makes daphne's HTTP factory use it; ``webmail.asgi`` calls it when daphne is what
imported the application (the web role, the browser tests' server, ``runserver``). Under
another server (uvicorn answers at the headers by itself) ``BodySizeLimit`` does the job.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from daphne import http_protocol
from twisted.web import http

from .limits import too_large_body

# After a 413, how long the rest of the refused body is read (and dropped) before closing
# (nginx's lingering_time).
LINGER_SECONDS = 30.0


class _Dropped:
    """Where a refused body goes: nowhere. (Twisted's Request writes, seeks and closes it.)"""

    closed = False

    def write(self, data: bytes) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        self.closed = True


class LimitedRequest(http_protocol.WebRequest):
    """daphne's request, refusing a body over ``limit()`` bytes as it arrives."""

    limit: Callable[[], int] = staticmethod(lambda: sys.maxsize)
    refused = False
    received = 0
    _linger: Any = None

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        if length is not None and length > self.limit() and isinstance(self.channel, http.HTTPChannel):
            # No "100 Continue" after the answer (the channel sends it right after this call).
            self.requestHeaders.removeHeader(b"expect")
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit() and isinstance(self.channel, http.HTTPChannel):
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if self.refused:
            # The whole refused body came (and went): nothing left to wait for.
            self.channel.transport.loseConnection()
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def _refuse(self) -> None:
        self.refused = True
        self.content = _Dropped()
        body = too_large_body(self.limit())
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        # Half-close: the answer and a FIN go now; what the client still sends is dropped
        # until it stops or the linger runs out. Closing outright could reset the
        # connection under the answer before the client reads it.
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        else:
            transport.loseConnection()
        from twisted.internet import reactor  # daphne's (asyncio) reactor, installed by then

        self._linger = reactor.callLater(LINGER_SECONDS, transport.abortConnection)  # type: ignore[attr-defined,arg-type]


def install(limit: Callable[[], int]) -> None:
    """Make daphne's HTTP/1.1 connections use ``LimitedRequest`` with ``limit`` (read per request)."""
    LimitedRequest.limit = staticmethod(limit)  # type: ignore[method-assign]
    http_protocol.WebRequest = LimitedRequest  # type: ignore[misc]  # HTTPFactory.buildProtocol reads this name
