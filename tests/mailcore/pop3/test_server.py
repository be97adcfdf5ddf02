"""poplib on real sockets against the POP3 service: every command, TLS, and the maildrop."""

from __future__ import annotations

import poplib
import socket
import time

import pytest

from mailcore import store
from mailcore.models import Account, Folder, FolderEntry, Message
from tests.conftest import PASSWORD, make_message

from .conftest import RunningPop3, client_tls_context, close, connect, login

pytestmark = pytest.mark.django_db(transaction=True)


def deliver(raw: bytes, to: str = "alice@a.test") -> None:
    result = store.message_deliver(raw=raw, recipients=[to])
    assert result.recipients[0].status.value == "delivered"


def inbox(account: Account) -> Folder:
    return Folder.objects.get(account=account, name=Folder.INBOX)


def wire(raw: bytes) -> list[bytes]:
    """The lines poplib gives back for a message: CRLF form, byte-stuffing undone."""
    return raw.replace(b"\r\n", b"\n").split(b"\n")[:-1] if raw.endswith(b"\n") else raw.replace(
        b"\r\n", b"\n").split(b"\n")


def wait_until(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class RawClient:
    """A line-level client for what poplib cannot send."""

    def __init__(self, port: int, source: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0) if source else None)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def command(self, text: str) -> bytes:
        self.send(text.encode() + b"\r\n")
        return self.line()

    def multiline(self) -> bytes:
        data = b""
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError(data)
            data += line
            if line == b".\r\n":
                return data

    def closed_by_server(self) -> bool:
        try:
            return self.file.readline() == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# --- AUTHORIZATION ---------------------------------------------------------------------------


def test_greeting_and_capa_before_login(pop3: RunningPop3, alice: Account) -> None:
    client = connect(pop3.port)
    try:
        assert client.getwelcome().startswith(b"+OK")
        caps = client.capa()
        for name in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
            assert name in caps
        assert caps["SASL"] == ["PLAIN"]
    finally:
        client.quit()


def test_user_pass_logs_in_and_quit_says_goodbye(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    client = login(pop3.port)
    assert client.stat()[0] == 1
    assert client.quit().startswith(b"+OK")


def test_wrong_password_gets_auth_code_and_third_failure_disconnects(pop3: RunningPop3, alice: Account) -> None:
    client = connect(pop3.port)
    try:
        for _ in range(2):
            client.user("alice@a.test")
            with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
                client.pass_("wrong")
        client.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
            client.pass_("wrong")
        with pytest.raises((poplib.error_proto, OSError)):
            client.noop()
    finally:
        close(client)


def test_unknown_account_is_refused_like_a_wrong_password(pop3: RunningPop3, alice: Account) -> None:
    client = connect(pop3.port)
    try:
        client.user("nobody@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] authentication failed"):
            client.pass_(PASSWORD)
    finally:
        close(client)


def test_login_throttle_refuses_with_sys_temp_past_the_limit(  # type: ignore[no-untyped-def]
    pop3: RunningPop3, alice: Account, settings, redis_or_not: str
) -> None:
    for _ in range(settings.AUTH_FAILURE_LIMIT):  # the service read the limit when it started
        client = connect(pop3.port)
        client.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
            client.pass_("wrong")
        close(client)
    client = connect(pop3.port)
    try:
        client.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/TEMP\]"):
            client.pass_(PASSWORD)  # the right password does not help while blocked
    finally:
        close(client)


def test_login_throttle_counts_per_account_across_client_addresses(pop3: RunningPop3, alice: Account,
                                                                   bob: Account, settings) -> None:  # type: ignore[no-untyped-def]
    for _ in range(settings.AUTH_FAILURE_LIMIT):
        client = RawClient(pop3.port, source="127.0.0.1")
        client.command("USER alice@a.test")
        assert client.command("PASS wrong").startswith(b"-ERR [AUTH]")
        client.close()
    elsewhere = RawClient(pop3.port, source="127.0.0.2")
    try:
        elsewhere.command("USER alice@a.test")
        assert elsewhere.command(f"PASS {PASSWORD}").startswith(b"-ERR [SYS/TEMP]")
    finally:
        elsewhere.close()
    elsewhere = RawClient(pop3.port, source="127.0.0.2")
    try:
        elsewhere.command("USER bob@b.test")
        assert elsewhere.command(f"PASS {PASSWORD}").startswith(b"+OK")
    finally:
        elsewhere.close()


def test_pass_without_user_is_refused(pop3: RunningPop3, alice: Account) -> None:
    client = connect(pop3.port)
    try:
        with pytest.raises(poplib.error_proto, match="send USER first"):
            client.pass_(PASSWORD)
    finally:
        client.quit()


def test_password_with_spaces_is_taken_whole(pop3: RunningPop3, alice: Account) -> None:
    # PASSWORD is "correct horse battery staple": PASS takes the rest of the line.
    client = login(pop3.port)
    client.quit()


def test_sasl_plain_with_initial_response(pop3: RunningPop3, alice: Account) -> None:
    import base64

    client = connect(pop3.port)
    token = base64.b64encode(f"\0alice@a.test\0{PASSWORD}".encode()).decode()
    assert client._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")
    assert client.stat() == (0, 0)
    client.quit()


def test_sasl_plain_with_continuation_and_authzid(pop3: RunningPop3, alice: Account) -> None:
    import base64

    client = connect(pop3.port)
    assert client._shortcmd("AUTH PLAIN").startswith(b"+ ")
    token = base64.b64encode(f"alice@a.test\0ALICE@A.TEST\0{PASSWORD}".encode()).decode()
    assert client._shortcmd(token).startswith(b"+OK")
    client.quit()


def test_sasl_plain_cancel_and_bad_base64_and_foreign_authzid(pop3: RunningPop3, alice: Account,
                                                              bob: Account) -> None:
    import base64

    client = RawClient(pop3.port)
    try:
        assert client.command("AUTH PLAIN") == b"+ \r\n"
        assert client.command("*") == b"-ERR authentication cancelled\r\n"
        assert client.command("AUTH PLAIN !!!notbase64").startswith(b"-ERR [AUTH] malformed")
        token = base64.b64encode(f"bob@b.test\0alice@a.test\0{PASSWORD}".encode()).decode()
        assert client.command(f"AUTH PLAIN {token}").startswith(b"-ERR [AUTH]")
        assert client.command("AUTH CRAM-MD5").startswith(b"-ERR unsupported")
        assert client.command("AUTH") == b"+OK SASL mechanisms follow\r\n"
        assert client.multiline() == b"PLAIN\r\n.\r\n"
    finally:
        client.close()


def test_plaintext_login_is_refused_before_tls_and_allowed_after_stls(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    deliver(make_message())
    pop3 = pop3_start(allow_plaintext_on_loopback=False, leave_on_server=False)
    client = connect(pop3.port)
    try:
        caps = client.capa()
        assert "USER" not in caps and "SASL" not in caps and "STLS" in caps
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] plaintext authentication is not allowed"):
            client.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
            client._shortcmd("AUTH PLAIN AGFsaWNlQGEudGVzdABw")
        client.stls(context=client_tls_context())
        caps = client.capa()
        assert "STLS" not in caps and "USER" in caps
        client.user("alice@a.test")
        client.pass_(PASSWORD)
        assert client.stat()[0] == 1
        client.quit()
    finally:
        close(client)


def test_implicit_tls_port_allows_login(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    pop3 = pop3_start(allow_plaintext_on_loopback=False, leave_on_server=False)
    client = poplib.POP3_SSL("127.0.0.1", pop3.tls_port, timeout=10, context=client_tls_context())
    try:
        assert "STLS" not in client.capa()
        client.user("alice@a.test")
        client.pass_(PASSWORD)
        client.quit()
    finally:
        close(client)


def test_stls_with_pipelined_plaintext_is_refused_and_closed(pop3: RunningPop3, alice: Account) -> None:
    client = RawClient(pop3.port)
    try:
        client.send(b"STLS\r\nUSER alice@a.test\r\n")
        assert client.line().startswith(b"-ERR nothing may follow STLS")
        assert client.closed_by_server()
    finally:
        client.close()


def test_stls_twice_is_refused(pop3: RunningPop3, alice: Account) -> None:
    client = connect(pop3.port)
    try:
        client.stls(context=client_tls_context())
        with pytest.raises(poplib.error_proto, match="already active"):
            client._shortcmd("STLS")
    finally:
        close(client)


def test_second_session_on_the_same_mailbox_gets_in_use(pop3: RunningPop3, alice: Account) -> None:
    first = login(pop3.port)
    second = connect(pop3.port)
    try:
        second.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
            second.pass_(PASSWORD)
        first.quit()
        second.user("alice@a.test")
        assert second.pass_(PASSWORD).startswith(b"+OK")
        second.quit()
    finally:
        close(first)
        close(second)


def test_the_lock_holds_across_separate_services(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    # Two services with nothing shared but PostgreSQL, as two runmail processes would be.
    one = pop3_start(allow_plaintext_on_loopback=True)
    two = pop3_start(allow_plaintext_on_loopback=True)
    first = login(one.port)
    second = connect(two.port)
    try:
        second.user("alice@a.test")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
            second.pass_(PASSWORD)
    finally:
        first.quit()
        close(second)


def test_sessions_on_two_mailboxes_run_side_by_side(pop3: RunningPop3, alice: Account, bob: Account) -> None:
    a = login(pop3.port)
    b = login(pop3.port, "bob@b.test")
    a.quit()
    b.quit()


# --- TRANSACTION -----------------------------------------------------------------------------


def test_stat_list_uidl_retr_top_on_a_snapshot(pop3: RunningPop3, alice: Account) -> None:
    raws = [make_message(subject=f"m{i}", body="line one\r\nline two\r\nline three\r\n") for i in range(3)]
    for raw in raws:
        deliver(raw)
    client = login(pop3.port)
    try:
        deliver(make_message(subject="after login"))  # not in this session's snapshot
        assert client.stat() == (3, sum(len(r) for r in raws))
        response, listing, _ = client.list()
        assert response.startswith(b"+OK 3")
        assert listing == [f"{i} {len(r)}".encode() for i, r in enumerate(raws, 1)]
        assert client.list(2) == f"+OK 2 {len(raws[1])}".encode()
        message_ids = list(FolderEntry.objects.filter(folder=inbox(alice)).order_by("uid").values_list("message_id", flat=True))
        assert client.uidl()[1] == [f"{i} {m}".encode() for i, m in enumerate(message_ids[:3], 1)]
        assert client.uidl(3) == f"+OK 3 {message_ids[2]}".encode()
        response, lines, octets = client.retr(1)
        assert response == f"+OK {len(raws[0])} octets".encode()
        assert b"\r\n".join(lines) + b"\r\n" == raws[0]
        response, lines, _ = client.top(2, 1)
        header = raws[1].split(b"\r\n\r\n")[0]
        assert lines == header.split(b"\r\n") + [b"", b"line one"]
        assert client.top(2, 0)[1] == header.split(b"\r\n") + [b""]
        assert client.top(2, 99)[1] == wire(raws[1])
        assert client.noop() == b"+OK"
    finally:
        client.quit()


def test_dele_rset_and_deleted_message_access(pop3: RunningPop3, alice: Account) -> None:
    for i in range(3):
        deliver(make_message(subject=f"m{i}"))
    client = login(pop3.port)
    try:
        size = client.stat()[1]
        one = client.list(1).split()[2]
        assert client.dele(1) == b"+OK message 1 deleted"
        assert client.stat() == (2, size - int(one))
        for call in (lambda: client.retr(1), lambda: client.dele(1), lambda: client.list(1),
                     lambda: client.uidl(1), lambda: client.top(1, 0)):
            with pytest.raises(poplib.error_proto, match="message 1 is deleted"):
                call()
        assert [line.split()[0] for line in client.list()[1]] == [b"2", b"3"]
        assert client.rset().startswith(b"+OK maildrop has 3 messages")
        assert client.stat() == (3, size)
        client.dele(2)
    finally:
        client.quit()
    assert [s for s in Message.objects.filter(account=alice).values_list("subject", flat=True).order_by("subject")] == ["m0", "m2"]


def test_quit_expunges_through_the_store_at_once(pop3: RunningPop3, alice: Account) -> None:
    for i in range(4):
        deliver(make_message(subject=f"m{i}"))
    before = inbox(alice)
    client = login(pop3.port)
    client.dele(1)
    client.dele(3)
    assert client.quit().endswith(b"(2 messages removed)")
    after = inbox(alice)
    assert after.total_count == 2 and after.highest_modseq > before.highest_modseq
    assert sorted(FolderEntry.objects.filter(folder=after).values_list("uid", flat=True)) == [2, 4]
    assert list(after.changes.filter(kind="expunge").values_list("uid", flat=True).order_by("uid")) == [1, 3]
    assert Message.objects.filter(account=alice).count() == 2


def test_quit_reports_how_many_messages_were_removed(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        assert client.command(f"PASS {PASSWORD}").startswith(b"+OK logged in; 1 messages")
        client.command("DELE 1")
        assert client.command("QUIT").endswith(b"(1 messages removed)\r\n")
        assert client.closed_by_server()
    finally:
        client.close()


def test_dropped_connection_deletes_nothing_and_releases_the_lock(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    deliver(make_message())
    client = login(pop3.port)
    client.dele(1)
    client.dele(2)
    client.sock.close()  # no QUIT
    client.file.close()

    def can_login() -> bool:
        other = connect(pop3.port)
        try:
            other.user("alice@a.test")
            other.pass_(PASSWORD)
        except poplib.error_proto:
            close(other)
            return False
        other.quit()
        return True

    assert wait_until(can_login)
    assert inbox(alice).total_count == 2


def test_retr_marks_seen_and_top_does_not(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message(subject="read"))
    deliver(make_message(subject="peeked"))
    client = login(pop3.port)
    client.retr(1)
    client.top(2, 0)
    client.quit()
    assert dict(Message.objects.filter(account=alice).values_list("subject", "seen")) == {"read": True, "peeked": False}


def test_retr_then_dropped_connection_still_marks_seen(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    client = login(pop3.port)
    client.retr(1)
    client.sock.close()
    client.file.close()
    assert wait_until(lambda: Message.objects.get(account=alice).seen)


def test_leave_on_server_marks_read_instead_of_deleting(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    pop3 = pop3_start(allow_plaintext_on_loopback=True, leave_on_server=True)
    deliver(make_message())
    client = login(pop3.port)
    uidl = client.uidl(1)
    client.dele(1)
    client.quit()
    message = Message.objects.get(account=alice)
    assert message.seen and inbox(alice).total_count == 1
    client = login(pop3.port)
    assert client.uidl(1) == uidl  # and the client knows it has it already
    client.quit()


def test_uidl_is_stable_across_sessions_and_deletions(pop3: RunningPop3, alice: Account) -> None:
    for _ in range(3):
        deliver(make_message())
    client = login(pop3.port)
    first = dict(line.split() for line in client.uidl()[1])
    client.dele(1)
    client.quit()
    deliver(make_message())
    client = login(pop3.port)
    second = dict(line.split() for line in client.uidl()[1])
    client.quit()
    assert list(second.values())[:2] == [first[b"2"], first[b"3"]]
    assert len(set(second.values())) == 3


def test_uidl_survives_a_move_out_of_inbox_and_back(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    client = login(pop3.port)
    before = client.uidl(1).split()[2]
    client.quit()
    archive = Folder.objects.get(account=alice, name="Archive")
    [(_, uid)] = store.message_move(account=alice, source=inbox(alice), uids=[1], target=archive)
    store.message_move(account=alice, source=archive, uids=[uid], target=inbox(alice))
    client = login(pop3.port)
    assert client.uidl(1).split()[2] == before
    client.quit()


def test_message_expunged_elsewhere_during_the_session_is_reported(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    deliver(make_message())
    client = login(pop3.port)
    try:
        store.folder_expunge(account=alice, folder=inbox(alice), uids=[1], only_deleted=False)
        with pytest.raises(poplib.error_proto, match="removed by another client"):
            client.retr(1)
        assert client.retr(2)[0].startswith(b"+OK")
        client.dele(1)
    finally:
        client.quit()
    assert inbox(alice).total_count == 1


# --- exact sizes and byte-stuffing ------------------------------------------------------------


DOTTY = (b"From: a@example.org\r\nSubject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\n"
         b"middle . dot\r\n.\r\n")
BARE_LF = b"From: a@example.org\nSubject: bare lf\n\nline one\n.dot line\nline \r three\r\n\nend"


@pytest.mark.parametrize(("raw", "expected_wire"), [
    (DOTTY, b"From: a@example.org\r\nSubject: dots\r\n\r\n..starts with a dot\r\n...two dots\r\n..\r\n"
            b"middle . dot\r\n..\r\n.\r\n"),
    (BARE_LF, b"From: a@example.org\r\nSubject: bare lf\r\n\r\nline one\r\n..dot line\r\nline \r three\r\n\r\nend\r\n.\r\n"),
], ids=["dot-lines", "bare-lf"])
def test_retr_sends_crlf_byte_stuffed_and_sizes_count_crlf_before_stuffing(
    pop3: RunningPop3, alice: Account, raw: bytes, expected_wire: bytes
) -> None:
    deliver(raw)
    expected_size = len(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        client.command(f"PASS {PASSWORD}")
        assert client.command("STAT") == f"+OK 1 {expected_size}\r\n".encode()
        assert client.command("LIST 1") == f"+OK 1 {expected_size}\r\n".encode()
        assert client.command("RETR 1") == f"+OK {expected_size} octets\r\n".encode()
        body = client.multiline()
        assert body == expected_wire
        unstuffed = body[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
        assert len(unstuffed[1:] if body.startswith(b"..") else unstuffed) == expected_size + (0 if raw.endswith(b"\n") else 2)
        client.command("QUIT")
    finally:
        client.close()


def test_top_byte_stuffs_and_counts_lines_of_a_bare_lf_message(pop3: RunningPop3, alice: Account) -> None:
    deliver(BARE_LF)
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        client.command(f"PASS {PASSWORD}")
        assert client.command("TOP 1 2").startswith(b"+OK")
        assert client.multiline() == b"From: a@example.org\r\nSubject: bare lf\r\n\r\nline one\r\n..dot line\r\n.\r\n"
    finally:
        client.close()


def test_large_message_is_streamed_whole(pop3: RunningPop3, alice: Account) -> None:
    body = "".join(f".line {i:07d} " + "x" * 60 + "\r\n" for i in range(60_000))  # ~4.4 MB, over many chunks
    raw = make_message(body=body)
    deliver(raw)
    client = login(pop3.port)
    try:
        response, lines, _ = client.retr(1)
        assert response == f"+OK {len(raw)} octets".encode()
        assert b"\r\n".join(lines) + b"\r\n" == raw
    finally:
        client.quit()


# --- hostile input and limits ----------------------------------------------------------------


def test_commands_in_the_wrong_state_are_refused(pop3: RunningPop3, alice: Account) -> None:
    client = RawClient(pop3.port)
    try:
        for command in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP"):
            assert client.command(command).startswith(b"-ERR ")
    finally:
        client.close()
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        assert client.command(f"PASS {PASSWORD}").startswith(b"+OK")
        for command in ("USER alice@a.test", "PASS x", "AUTH PLAIN", "STLS"):
            assert client.command(command).startswith(b"-ERR ")
    finally:
        client.close()


def test_bad_arguments_and_out_of_range_numbers(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        client.command(f"PASS {PASSWORD}")
        assert client.command("RETR 2") == b"-ERR no message 2\r\n"
        assert client.command("LIST 99999999999") == b"-ERR invalid message number\r\n"
        assert client.command("RETR 0") == b"-ERR invalid message number\r\n"
        assert client.command("RETR -1") == b"-ERR invalid message number\r\n"
        assert client.command("DELE abc") == b"-ERR invalid message number\r\n"
        assert client.command("TOP 1 x") == b"-ERR invalid line count\r\n"
    finally:
        client.close()
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        client.command(f"PASS {PASSWORD}")
        assert client.command("TOP 1") .startswith(b"-ERR TOP takes")
        assert client.command("RETR") .startswith(b"-ERR RETR takes")
        assert client.command("STAT 1").startswith(b"-ERR STAT takes")
        assert client.command("UIDL 1 2").startswith(b"-ERR UIDL takes")
        assert client.command("XYZZY").startswith(b"-ERR unknown command")
        assert client.command("retr 1").startswith(b"+OK")  # keywords are case-insensitive
        client.multiline()
    finally:
        client.close()


def test_too_many_bad_commands_closes_the_connection(pop3: RunningPop3, alice: Account) -> None:
    client = RawClient(pop3.port)
    try:
        for _ in range(9):
            assert client.command("BOGUS").startswith(b"-ERR")
        assert client.command("BOGUS").endswith(b"too many bad commands, closing\r\n")
        assert client.closed_by_server()
    finally:
        client.close()


def test_overlong_line_is_refused_and_the_session_goes_on(pop3: RunningPop3, alice: Account) -> None:
    client = RawClient(pop3.port)
    try:
        assert client.command("NOOP " + "x" * 300) == b"-ERR command line too long\r\n"
        assert client.command("USER " + "x" * 5000) == b"-ERR line too long\r\n"
        assert client.command("CAPA").startswith(b"+OK")
        client.multiline()
    finally:
        client.close()


def test_endless_line_closes_the_connection(pop3: RunningPop3, alice: Account) -> None:
    client = RawClient(pop3.port)
    try:
        try:
            for _ in range(40):
                client.send(b"A" * 4096)
        except ConnectionError:
            pass
        reply = client.line()
        assert reply in (b"-ERR line too long; closing\r\n", b"")
        assert client.closed_by_server()
    finally:
        client.close()


def test_control_characters_and_invalid_utf8_are_refused(pop3: RunningPop3, alice: Account) -> None:
    client = RawClient(pop3.port)
    try:
        client.send(b"USER alice\x00@a.test\r\n")
        assert client.line() == b"-ERR control characters are not allowed in commands\r\n"
        client.send(b"USER \xff\xfe\r\n")
        assert client.line() == b"-ERR commands must be UTF-8 text\r\n"
    finally:
        client.close()


def test_pipelined_commands_are_answered_in_order(pop3: RunningPop3, alice: Account) -> None:
    deliver(make_message())
    client = RawClient(pop3.port)
    try:
        client.send(f"USER alice@a.test\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nNOOP\r\nQUIT\r\n".encode())
        assert client.line() == b"+OK send PASS\r\n"
        assert client.line().startswith(b"+OK logged in")
        assert client.line().startswith(b"+OK 1 ")
        assert client.line() == b"+OK 1 messages\r\n"
        assert client.multiline().endswith(b"\r\n.\r\n")
        assert client.line() == b"+OK\r\n"
        assert client.line().startswith(b"+OK")
        assert client.closed_by_server()
    finally:
        client.close()


def test_idle_connection_before_login_is_closed(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    from mailcore.pop3.session import Pop3Limits

    pop3 = pop3_start(allow_plaintext_on_loopback=True, limits=Pop3Limits(login_timeout=0.5, idle_timeout=30))
    client = RawClient(pop3.port)
    try:
        assert client.line() == b"-ERR idle for too long; closing\r\n"
        assert client.closed_by_server()
    finally:
        client.close()


def test_idle_session_after_login_is_closed_without_deleting(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    from mailcore.pop3.session import Pop3Limits

    deliver(make_message())
    pop3 = pop3_start(allow_plaintext_on_loopback=True, limits=Pop3Limits(login_timeout=30, idle_timeout=0.5))
    client = RawClient(pop3.port)
    try:
        client.command("USER alice@a.test")
        client.command(f"PASS {PASSWORD}")
        client.command("DELE 1")
        assert client.line() == b"-ERR idle for too long; closing\r\n"
        assert client.closed_by_server()
    finally:
        client.close()
    assert inbox(alice).total_count == 1


def test_command_limit_closes_the_connection(pop3_start, alice: Account) -> None:  # type: ignore[no-untyped-def]
    from mailcore.pop3.session import Pop3Limits

    pop3 = pop3_start(allow_plaintext_on_loopback=True, limits=Pop3Limits(max_commands=3))
    client = RawClient(pop3.port)
    try:
        for _ in range(3):
            client.command("CAPA")
            client.multiline()
        assert client.command("CAPA") == b"-ERR [SYS/PERM] too many commands; closing\r\n"
        assert client.closed_by_server()
    finally:
        client.close()


def test_quit_publishes_an_expunge_event_for_imap_and_the_web(pop3: RunningPop3, alice: Account, settings) -> None:  # type: ignore[no-untyped-def]
    import redis
    from channels_redis.serializers import registry

    from mailcore.events import account_group

    deliver(make_message())
    listener = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = listener.pubsub()
    pubsub.subscribe(f"asgi__group__{account_group(alice.pk)}")
    try:
        client = login(pop3.port)
        client.dele(1)
        client.quit()
        events = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e["kind"] == "expunge" for e in events):
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                events.append(registry.get_serializer("msgpack").deserialize(message["data"]))
        assert {"type": "mail.changed", "account": alice.pk, "folder": inbox(alice).pk, "kind": "expunge",
                "modseq": inbox(alice).highest_modseq} in events
    finally:
        pubsub.close()
        listener.close()


def test_serve_opens_pop3_and_pop3s_on_mail_bind_for_runmail(settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import contextlib
    import re

    from mailcore.pop3.server import serve

    settings.MAIL_BIND, settings.POP3_PORT, settings.POP3S_PORT = "127.0.0.1", free_port(), free_port()

    async def main() -> list[bytes]:
        greetings = []
        async with contextlib.AsyncExitStack() as stack:
            lines = await serve(stack)
            assert [line.split()[0] for line in lines] == ["pop3", "pop3s"]
            for line, tls in zip(lines, (None, client_tls_context()), strict=True):
                port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
                greetings.append(await asyncio.wait_for(reader.readline(), 10))
                writer.write(b"QUIT\r\n")
                greetings.append(await asyncio.wait_for(reader.readline(), 10))
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        return greetings

    greetings = asyncio.run(main())
    assert all(g.startswith(b"+OK") for g in greetings) and len(greetings) == 4


def test_leave_on_server_follows_the_setting_by_default(pop3_start, alice: Account, settings) -> None:  # type: ignore[no-untyped-def]
    settings.POP3_LEAVE_ON_SERVER = True
    pop3 = pop3_start(allow_plaintext_on_loopback=True)
    deliver(make_message())
    client = login(pop3.port)
    client.dele(1)
    client.quit()
    assert inbox(alice).total_count == 1 and Message.objects.get(account=alice).seen


def test_ipv6_loopback_client_counts_as_loopback(pop3: RunningPop3, alice: Account) -> None:
    import asyncio

    async def listen() -> int:
        server = await pop3.service.listen("::1", 0)
        return int(server.sockets[0].getsockname()[1])

    port = asyncio.run_coroutine_threadsafe(listen(), pop3.loop).result(timeout=10)
    client = poplib.POP3("::1", port, timeout=10)
    try:
        client.user("alice@a.test")
        assert client.pass_(PASSWORD).startswith(b"+OK")
    finally:
        client.quit()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_skips_a_pop3_listener_whose_port_is_zero(settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import contextlib

    from mailcore.pop3.server import listen_ports, serve

    settings.MAIL_BIND, settings.POP3_PORT, settings.POP3S_PORT = "127.0.0.1", 0, free_port()
    assert listen_ports() == [("pop3s", settings.POP3S_PORT)]

    async def main() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            return await serve(stack)

    assert asyncio.run(main()) == [f"pop3s listening on 127.0.0.1:{settings.POP3S_PORT} (implicit TLS)"]
    settings.POP3S_PORT = 0
    assert listen_ports() == [] and asyncio.run(main()) == []
