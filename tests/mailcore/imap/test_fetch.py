from __future__ import annotations

from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from mailcore import store
from mailcore.models import Account, Folder, Message
from tests.conftest import PASSWORD

from .helpers import Raw

pytestmark = pytest.mark.django_db(transaction=True)

MULTIPART = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n"
    b"To: Alice <alice@a.test>, bob@b.test\r\n"
    b"Subject: Report\r\n"
    b"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <report-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
    b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQ=\r\n"
    b"--XYZ--\r\n"
)


@pytest.fixture
def ic(imap_port: int, alice: Account) -> Iterator[IMAPClient]:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=MULTIPART)
    with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
        client.login("alice@a.test", PASSWORD)
        client.select_folder("INBOX")
        yield client


def test_body_is_byte_identical_and_peek_keeps_unseen(ic: IMAPClient) -> None:
    data = ic.fetch([1], ["BODY.PEEK[]", "RFC822.SIZE", "FLAGS"])[1]
    assert data[b"BODY[]"] == MULTIPART and data[b"RFC822.SIZE"] == len(MULTIPART)
    assert b"\\Seen" not in data[b"FLAGS"]


def test_body_fetch_sets_seen_and_reports_flags(ic: IMAPClient) -> None:
    data = ic.fetch([1], ["BODY[1]"])[1]
    assert data[b"BODY[1]"] == b"Gr=C3=BC=C3=9Fe"
    assert b"\\Seen" in data[b"FLAGS"]
    assert Message.objects.get().seen


def test_sections_headers_partial_and_mime(ic: IMAPClient) -> None:
    data = ic.fetch([1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[1.MIME]", "BODY.PEEK[]<0.4>",
                          "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT TO FROM DATE MESSAGE-ID MIME-VERSION)]",
                          "BODY.PEEK[TEXT]", "BODY.PEEK[9]"])[1]
    assert data[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: Report\r\n\r\n"
    assert data[b"BODY[1.MIME]"].startswith(b"Content-Type: text/plain")
    assert data[b"BODY[]<0>"] == b"From"
    assert data[b"BODY[HEADER.FIELDS.NOT (SUBJECT TO FROM DATE MESSAGE-ID MIME-VERSION)]"].startswith(
        b"Content-Type: multipart/mixed")
    assert data[b"BODY[TEXT]"].startswith(b"preamble")
    assert data[b"BODY[9]"] is None


def test_rfc822_items(ic: IMAPClient) -> None:
    data = ic.fetch([1], ["RFC822.HEADER", "RFC822.TEXT"])[1]
    assert data[b"RFC822.HEADER"] + data[b"RFC822.TEXT"] == MULTIPART
    assert ic.fetch([1], ["RFC822"])[1][b"RFC822"] == MULTIPART


def test_envelope_and_bodystructure(ic: IMAPClient) -> None:
    data = ic.fetch([1], ["ENVELOPE", "BODYSTRUCTURE", "BODY", "INTERNALDATE", "UID"])[1]
    env = data[b"ENVELOPE"]
    assert env.subject == b"Report" and env.message_id == b"<report-1@example.org>"
    assert env.from_[0].mailbox == b"jorg" and env.from_[0].name == b"=?utf-8?q?J=C3=B6rg?="
    assert [a.mailbox for a in env.to] == [b"alice", b"bob"]
    structure = data[b"BODYSTRUCTURE"]
    assert structure.is_multipart
    parts, subtype = structure[0], structure[1]
    assert subtype.lower() == b"mixed"
    assert parts[0][:2] == (b"TEXT", b"PLAIN") and parts[0][5] == b"QUOTED-PRINTABLE"
    assert parts[1][:2] == (b"APPLICATION", b"OCTET-STREAM")
    assert data[b"INTERNALDATE"] is not None


def test_binary_decodes_the_part(ic: IMAPClient, imap_port: int) -> None:
    data = ic.fetch([1], ["BINARY.SIZE[2]", "BINARY.PEEK[1]"])[1]
    assert data[b"BINARY.SIZE[2]"] == 5
    assert data[b"BINARY[1]"] == "Grüße".encode()
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "EXAMINE INBOX")
    lines = raw.cmd("c", "FETCH 1 (BINARY.PEEK[2])")
    # RFC 3516: NUL octets are sent as literal8.
    assert b"".join(lines).startswith(b"* 1 FETCH (BINARY[2] ~{5}\r\n\x00\x01\x02\x03\x04)\r\n")
    raw.close()


def test_fetch_exact_wire_format(imap_port: int, alice: Account) -> None:
    inbox = Folder.objects.get(account=alice, name="INBOX")
    store.message_append(account=alice, folder=inbox, raw=MULTIPART, flags=["\\Flagged", "$Work"])
    raw = Raw(imap_port)
    raw.cmd("a", f'LOGIN alice@a.test "{PASSWORD}"')
    raw.cmd("b", "SELECT INBOX")
    lines = raw.cmd("c", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)] UID MODSEQ)")
    text = b"".join(lines)
    assert text.startswith(b"* 1 FETCH (FLAGS (\\Flagged $Work \\Recent) BODY[HEADER.FIELDS (Subject)] {19}\r\n"
                           b"Subject: Report\r\n\r\n UID 1 MODSEQ (")
    assert lines[-1] == b"c OK FETCH completed\r\n"
    assert raw.cmd("d", "FETCH 5 FLAGS")[-1].startswith(b"d BAD")
    assert raw.cmd("e", "UID FETCH 5 FLAGS") == [b"e OK UID FETCH completed\r\n"]
    raw.close()
