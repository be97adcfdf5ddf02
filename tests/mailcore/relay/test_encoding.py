import email
from email.policy import compat32

from mailcore.relay.encoding import body_to_7bit, crlf_normalize, dot_stuff, has_8bit, wire_data


def test_crlf_normalize_fixes_bare_lf_and_bare_cr_and_adds_final_crlf() -> None:
    assert crlf_normalize(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd\r\n"


def test_dot_stuffing_doubles_leading_dots_only() -> None:
    assert dot_stuff(b".hidden\r\nmid.dle\r\n..two\r\n") == b"..hidden\r\nmid.dle\r\n...two\r\n"


def test_wire_data_ends_with_the_terminator_and_a_lone_dot_line_cannot_end_early() -> None:
    assert wire_data(b"line\n.\nafter") == b"line\r\n..\r\nafter\r\n.\r\n"


def test_body_to_7bit_encodes_an_8bit_text_body_as_quoted_printable() -> None:
    raw = "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\nline 2\r\n".encode()
    out = body_to_7bit(raw)
    assert not has_8bit(out)
    assert b"Content-Transfer-Encoding: quoted-printable" in out
    assert b"Content-Transfer-Encoding: 8bit" not in out
    msg = email.message_from_bytes(out, policy=compat32)
    assert msg.get_payload(decode=True) == "Grüße\r\nline 2\r\n".encode()


def test_body_to_7bit_converts_only_the_8bit_leaves_of_a_multipart_and_keeps_the_rest_verbatim() -> None:
    ascii_part = b"Content-Type: text/plain\r\n\r\nplain ascii stays\r\n"
    raw = (
        b'Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n'
        b"--b1\r\n" + ascii_part + b"--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "<p>café</p>\r\n".encode() + b"--b1\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00\x01\r\n--b1--\r\nepilogue\r\n"
    )
    out = body_to_7bit(raw)
    assert not has_8bit(out)
    assert b"--b1\r\n" + ascii_part in out
    assert out.endswith(b"--b1--\r\nepilogue\r\n")
    parts = email.message_from_bytes(out, policy=compat32).get_payload()
    assert parts[1]["Content-Transfer-Encoding"] == "quoted-printable"
    assert parts[1].get_payload(decode=True) == "<p>café</p>".encode()
    assert parts[2]["Content-Transfer-Encoding"] == "base64"
    assert parts[2].get_payload(decode=True) == b"\xff\xfe\x00\x01"


def test_body_to_7bit_leaves_a_7bit_message_byte_for_byte() -> None:
    raw = b"Subject: x\r\n\r\nhello\r\n"
    assert body_to_7bit(raw) == raw


def test_body_to_7bit_adds_mime_headers_to_a_non_mime_8bit_message() -> None:
    out = body_to_7bit("Subject: x\r\n\r\nnaïve\r\n".encode())
    assert b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable" in out
    assert not has_8bit(out)
