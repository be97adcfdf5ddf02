"""IMAP ENVELOPE and BODY[section] served from stored offsets."""

from __future__ import annotations

from pathlib import Path

from mailcore.mime import parse_message, section_bytes

CORPUS = Path(__file__).parent / "corpus"


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.eml").read_bytes()


def test_envelope_uses_raw_values_and_group_markers() -> None:
    parsed = parse_message(load("group_addresses"))
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = parsed.envelope
    assert date == "Tue, 12 Mar 2024 09:15:00 +0100"
    assert subject == "Group syntax"
    assert from_ == [["Alice Example", None, "alice", "example.com"]]
    assert sender == [["Secretary", None, "secretary", "example.com"]]
    assert reply_to == from_  # RFC 3501: defaults to From
    assert to == [
        [None, None, "Project Team", None],
        [None, None, "bob", "example.net"],
        ["Carol (QA)", None, "carol", "example.org"],
        [None, None, None, None],
        [None, None, "undisclosed-recipients", None],
        [None, None, None, None],
    ]
    assert cc == [["Dave Davis", None, "dave", "example.com"]]
    assert bcc is None and in_reply_to is None
    assert message_id == "<m@example.com>"
    assert [a.email for a in parsed.to] == ["bob@example.net", "carol@example.org"]
    assert parsed.sender[0].name == "Secretary"


def test_envelope_subject_and_names_are_not_rfc2047_decoded() -> None:
    parsed = parse_message(load("idn_addresses"))
    assert parsed.envelope[2] == [["=?iso-8859-1?Q?J=F6rg?=", None, "joerg", "xn--bcher-kva.example"]]
    assert parsed.from_[0].name == "Jörg"
    assert parsed.to[0].email == "bob@bücher.example"  # IDN kept as written


def test_envelope_of_forwarded_message_is_stored_on_its_node() -> None:
    parsed = parse_message(load("forwarded_rfc822"))
    node = parsed.bodystructure["parts"][1]
    assert (node["type"], node["subtype"]) == ("message", "rfc822")
    inner_envelope = node["message"]["envelope"]
    assert inner_envelope[1] == "Original report"
    assert inner_envelope[2] == [["Carol", None, "carol", "example.org"]]
    assert node["message"]["bodystructure"]["subtype"] == "mixed"


def test_threading_ids_come_without_brackets() -> None:
    parsed = parse_message(load("mailing_list_reply"))
    assert parsed.message_id == "m@example.com"
    assert parsed.in_reply_to == ["prev@python.org"]
    assert parsed.references == ["root@python.org", "mid1@python.org", "prev@python.org"]
    assert parsed.reply_to[0].email == "python-dev@python.org"
    assert parsed.date is not None and parsed.date.utcoffset() is not None


def test_sections_of_a_forwarded_message() -> None:
    raw = load("forwarded_rfc822")
    bs = parse_message(raw).bodystructure
    whole = section_bytes(raw, bs, "2")
    assert whole is not None and whole.startswith(b"From: Carol <carol@example.org>\r\n")
    header = section_bytes(raw, bs, "2.HEADER")
    text = section_bytes(raw, bs, "2.TEXT")
    assert header is not None and text is not None
    assert header + text == whole
    assert header.endswith(b"\r\n\r\n")
    assert section_bytes(raw, bs, "2.1") == b"The original text."
    assert section_bytes(raw, bs, "2.2.MIME") == (
        b'Content-Type: application/pdf; name="report.pdf"\r\n'
        b'Content-Disposition: attachment; filename="report.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    assert section_bytes(raw, bs, "2.MIME") == (
        b'Content-Type: message/rfc822; name="Original report.eml"\r\n'
        b'Content-Disposition: attachment; filename="Original report.eml"\r\n\r\n'
    )
    assert section_bytes(raw, bs, "2.HEADER.FIELDS (Subject FROM)") == (
        b"From: Carol <carol@example.org>\r\nSubject: Original report\r\n\r\n"
    )


def test_header_fields_and_not() -> None:
    raw = load("outlook_related")
    bs = parse_message(raw).bodystructure
    assert section_bytes(raw, bs, "HEADER.FIELDS (subject)") == b"Subject: AW: Budget 2024\r\n\r\n"
    assert (
        section_bytes(raw, bs, "HEADER.FIELDS", fields=["To"]) == b"To: Bob Example <bob@example.net>\r\n\r\n"
    )
    rest = section_bytes(raw, bs, "HEADER.FIELDS.NOT (Subject Content-Type Thread-Index)")
    assert rest is not None
    assert b"Subject:" not in rest and b"Thread-Index" not in rest and b"boundary" not in rest
    assert rest.startswith(b"From: Alice Example") and rest.endswith(b"\r\n\r\n")


def test_folded_fields_are_returned_whole() -> None:
    raw = load("outlook_related")
    bs = parse_message(raw).bodystructure
    assert section_bytes(raw, bs, "HEADER.FIELDS (CONTENT-TYPE)") == (
        b'Content-Type: multipart/mixed;\r\n\tboundary="_004_AM0PR01MB1234_"\r\n\r\n'
    )


def test_nested_sections_and_single_part_numbering() -> None:
    raw = load("outlook_related")
    bs = parse_message(raw).bodystructure
    assert section_bytes(raw, bs, "1.1.1") == b"Gr=FC=DFe, anbei das Budget.\r\n"
    assert section_bytes(raw, bs, "1.2.MIME") is not None
    assert section_bytes(raw, bs, "3") is None
    assert section_bytes(raw, bs, "1.1.1.1") is None
    assert section_bytes(raw, bs, "1.TEXT") is None  # not a message/rfc822 part
    assert section_bytes(raw, bs, "BOGUS") is None

    plain = load("simple_plain")
    bs = parse_message(plain).bodystructure
    assert section_bytes(plain, bs, "1") == b"Hi Bob,\r\n\r\nLunch at noon tomorrow?\r\n\r\nAlice\r\n"
    assert section_bytes(plain, bs, "2") is None


def test_offsets_are_right_for_bare_lf_messages() -> None:
    raw = load("bare_lf_multipart")
    parsed = parse_message(raw)
    assert raw[: parsed.header_size].endswith(b"\n\n")
    assert section_bytes(raw, parsed.bodystructure, "1") == b"Unix line endings.\nSecond line."
    assert section_bytes(raw, parsed.bodystructure, "2") == b"<p>Unix line endings.</p>"
    assert section_bytes(raw, parsed.bodystructure, "2.MIME") == b"Content-Type: text/html; charset=utf-8\n\n"
    node = parsed.bodystructure["parts"][0]
    assert node["lines"] == 2 and node["size"] == len(b"Unix line endings.\nSecond line.")


def test_mixed_line_endings() -> None:
    raw = load("mixed_crlf_lf")
    bs = parse_message(raw).bodystructure
    assert section_bytes(raw, bs, "1") == b"LF part."
    assert section_bytes(raw, bs, "2") == b"CRLF part."


def test_prefix_sharing_boundaries_and_padding() -> None:
    raw = load("nested_prefix_boundaries")
    bs = parse_message(raw).bodystructure
    assert [p["subtype"] for p in bs["parts"]] == ["alternative", "csv"]
    assert section_bytes(raw, bs, "1.2") == b"<p>Inner html.</p>"
    assert section_bytes(raw, bs, "2") == b"a,b\r\n1,2"

    raw = load("transport_padding_epilogue")
    bs = parse_message(raw).bodystructure
    assert section_bytes(raw, bs, "1") == b"Padded delimiter part."
    assert section_bytes(raw, bs, "2") == b"Second."


def test_header_size_without_separator() -> None:
    raw = load("no_blank_line")
    assert parse_message(raw).header_size == len(raw)
    raw = load("no_blank_line_body_glued")
    parsed = parse_message(raw)
    assert raw[parsed.header_size :].startswith(b"This line is body text")
    assert parsed.subject == "Glued body"


def test_bodystructure_node_keys() -> None:
    parsed = parse_message(load("outlook_related"))
    image = parsed.bodystructure["parts"][0]["parts"][1]
    assert image["type"] == "image" and image["subtype"] == "png"
    assert image["params"] == [["name", "image001.png"]]
    assert image["id"] == "<image001.png@01DA7000.12345670>"
    assert image["description"] == "image001.png"
    assert image["encoding"] == "base64"
    assert image["disposition"] == [
        "inline",
        [["filename", "image001.png"], ["size", "800"], ["creation-date", "Tue, 12 Mar 2024 08:15:00 GMT"]],
    ]
    assert image["md5"] is None and image["location"] is None
    assert parsed.bodystructure["language"] == ["de-DE"]
    text = parsed.bodystructure["parts"][0]["parts"][0]["parts"][0]
    assert text["lines"] == 1 and text["encoding"] == "quoted-printable"
    for key in (
        "header_start",
        "header_end",
        "body_start",
        "body_end",
        "size",
        "md5",
        "language",
        "location",
    ):
        assert key in text
