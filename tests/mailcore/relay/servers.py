"""Stand-ins for the outside internet on 127.0.0.1: a tiny DNS server and a recording SMTP server.

Both bind an ephemeral port, run in a daemon thread, and stop within a bounded time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

STOP_TIMEOUT = 5.0


class DnsServer:
    """Answers UDP queries from ``zone``: {(name, type): [rdata text]}; "SERVFAIL" as a value fails."""

    def __init__(self, zone: dict[tuple[str, str], list[str] | str]) -> None:
        self.zone = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in zone.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        self.sock.close()

    def _names(self) -> set[str]:
        return {n for n, _ in self.zone}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            value = self.zone.get((name, rdtype))
            if value == "SERVFAIL":
                response.set_rcode(dns.rcode.SERVFAIL)
            elif value is not None:
                rrset = dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, question.rdtype, list(value))
                response.answer.append(rrset)
            elif name not in self._names():
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    tls: bool


@dataclass
class SinkBehaviour:
    eight_bit: bool = True
    smtputf8: bool = True
    starttls: bool = False
    auth: tuple[str, str] | None = None  # (user, password) required when set
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply line
    data_reply: str = ""  # e.g. "451 4.3.0 try later"; empty = 250
    pipelining: bool = False  # advertise PIPELINING (aiosmtpd reads pipelined commands in order anyway)
    tls_broken: bool = False  # STARTTLS offered, but the handshake fails (it demands a client certificate)
    mail_replies: list[str] = field(default_factory=list)  # replies for the next MAIL commands, in order
    hold_rcpt: set[str] = field(default_factory=set)  # RCPT for these waits (bounded), then 451
    hold_seconds: float = 10.0
    dsn: bool = False  # advertise DSN (RFC 3461) and record RET/ENVID and NOTIFY/ORCPT


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        behaviour = self.sink.behaviour
        if not behaviour.eight_bit:
            responses = [r for r in responses if r != "250-8BITMIME"]
        if behaviour.pipelining:
            responses.insert(1, "250-PIPELINING")
        if behaviour.dsn:
            responses.insert(1, "250-DSN")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if self.sink.behaviour.mail_replies:
            return self.sink.behaviour.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address in self.sink.behaviour.hold_rcpt:
            with self.sink.lock:
                self.sink.holding += 1
            await asyncio.sleep(self.sink.behaviour.hold_seconds)
            return "451 4.4.2 held too long"
        reply = self.sink.behaviour.rcpt_replies.get(address)
        if reply and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.behaviour.data_reply:
            return self.sink.behaviour.data_reply
        content = envelope.original_content if envelope.original_content is not None else envelope.content
        assert isinstance(content, bytes)
        with self.sink.lock:
            self.sink.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), content, list(envelope.mail_options), session.ssl is not None)
            )
        return "250 2.0.0 OK queued"


class _CountingSMTP(SMTP):
    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink

    async def smtp_MAIL(self, arg: str) -> None:
        await super().smtp_MAIL(self._take_dsn(arg, ("RET", "ENVID"), "MAIL"))

    async def smtp_RCPT(self, arg: str) -> None:
        await super().smtp_RCPT(self._take_dsn(arg, ("NOTIFY", "ORCPT"), "RCPT"))

    def _take_dsn(self, arg: str, names: tuple[str, ...], command: str) -> str:
        """With ``dsn``, record the DSN parameters and hide them from aiosmtpd (which knows none)."""
        if not self.sink.behaviour.dsn or not arg:
            return arg
        words = arg.split(" ")
        taken = [w for w in words[1:] if w.partition("=")[0].upper() in names]
        with self.sink.lock:
            self.sink.dsn_params.append((command, words[0], taken))
        return " ".join(w for w in words if w not in taken)

    async def smtp_RSET(self, arg: str) -> None:
        with self.sink.lock:
            self.sink.rsets += 1
        await super().smtp_RSET(arg)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with self.sink.lock:
            self.sink.connections += 1
        super().connection_made(transport)


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records messages and counts connections."""

    def __init__(self, behaviour: SinkBehaviour | None = None) -> None:
        self.behaviour = behaviour or SinkBehaviour()
        self.received: list[Received] = []
        self.connections = 0
        self.holding = 0
        self.rsets = 0
        self.dsn_params: list[tuple[str, str, list[str]]] = []  # (MAIL|RCPT, FROM:<..>|TO:<..>, params)
        self.lock = threading.Lock()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _factory(self) -> SMTP:
        from mailcore.net.tls import server_context

        behaviour = self.behaviour

        def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and behaviour.auth == (auth_data.login.decode(), auth_data.password.decode())
            return AuthResult(success=ok, handled=False)

        context = server_context() if behaviour.starttls else None
        if behaviour.tls_broken:
            import ssl

            from mailcore.net.tls import cert_and_key_paths

            cert, key = cert_and_key_paths()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert), str(key))
            context.load_verify_locations(str(cert))
            context.verify_mode = ssl.CERT_REQUIRED
        return _CountingSMTP(
            self,
            hostname="sink.test",
            enable_SMTPUTF8=behaviour.smtputf8,
            tls_context=context,
            authenticator=authenticator if behaviour.auth else None,
            auth_required=bool(behaviour.auth),
            loop=self._loop,
        )

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(STOP_TIMEOUT)
        return self

    async def _start(self) -> None:
        self._server = await self._loop.create_server(self._factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT)
        self._loop.close()

    def messages_to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
