"""parse_message over the corpus: per-message metadata, and offsets checked against the stdlib."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from pathlib import Path

import pytest

from mailcore.mime import decoded_part, iter_nodes, parse_message, section_bytes
from mailcore.mime.bodystructure import MAX_DEPTH

CORPUS = Path(__file__).parent / "corpus"
DEEP_TEXT_PART = ".".join(["1"] * MAX_DEPTH)

# name: (subject, first From email, attachment filenames, leaf parts, has_attachments,
#        preview prefix, thread_subject, text_part, html_part)
EXPECTED: dict[str, tuple[str, str | None, list[str], int, bool, str, str, str | None, str | None]] = {
    "apple_html_related": (
        "Signature test",
        "alice@example.com",
        ["logo.png"],
        3,
        False,
        "Best regards — Alice",
        "signature test",
        "1",
        "2.1",
    ),
    "apple_mail": (
        "Photos from the weekend",
        "alice@example.com",
        ["IMG_0042.jpg"],
        3,
        True,
        "Here you go:",
        "photos from the weekend",
        "1",
        None,
    ),
    "bad_base64": (
        "Bad base64",
        "alice@example.com",
        [],
        1,
        False,
        "Hello world\x1b��\x08 \x18Y\x19\x19Y",
        "bad base64",
        "1",
        None,
    ),
    "bare_lf_multipart": (
        "Bare LF multipart",
        "alice@example.com",
        [],
        2,
        False,
        "Unix line endings. Secon",
        "bare lf multipart",
        "1",
        "2",
    ),
    "boundary_never_appears": (
        "Boundary never appears",
        "alice@example.com",
        [],
        1,
        False,
        "Just some text where par",
        "boundary never appears",
        "1",
        None,
    ),
    "broken_missing_close": (
        "Missing close delimiter",
        "alice@example.com",
        ["data.bin"],
        2,
        True,
        "First part.",
        "missing close delimiter",
        "1",
        None,
    ),
    "calendar_invite": (
        "Invitation: Planning @ Fri Mar 15, 2024",
        "alice@example.com",
        ["invite.ics", "invite.ics"],
        4,
        True,
        "You have been invited to",
        "invitation: planning @ fri mar 15, 2024",
        "1.1",
        "1.2",
    ),
    "charset_big5": (
        "測試 test",
        "alice@example.com",
        [],
        1,
        False,
        "繁體中文測試。",
        "測試 test",
        "1",
        None,
    ),
    "charset_gb2312": (
        "主题 test",
        "alice@example.com",
        [],
        1,
        False,
        "你好，世界。",
        "主题 test",
        "1",
        None,
    ),
    "charset_iso2022_jp": (
        "日本語 test",
        "alice@example.com",
        [],
        1,
        False,
        "日本語のメールです。",
        "日本語 test",
        "1",
        None,
    ),
    "charset_iso8859_1": (
        "Crème test",
        "alice@example.com",
        [],
        1,
        False,
        "Café crème à Noël.",
        "crème test",
        "1",
        None,
    ),
    "charset_koi8_r": (
        "Тема test",
        "alice@example.com",
        [],
        1,
        False,
        "Съешь же ещё этих мягких",
        "тема test",
        "1",
        None,
    ),
    "charset_mislabelled_utf8": (
        "Mislabelled",
        "alice@example.com",
        [],
        1,
        False,
        "naïve façade",
        "mislabelled",
        "1",
        None,
    ),
    "charset_shift_jis": (
        "件名 test",
        "alice@example.com",
        [],
        1,
        False,
        "こんにちは、世界。",
        "件名 test",
        "1",
        None,
    ),
    "charset_unknown": (
        "Unknown charset",
        "alice@example.com",
        [],
        1,
        False,
        "Plain ascii survives.",
        "unknown charset",
        "1",
        None,
    ),
    "charset_utf7": (
        "Grüß test",
        "alice@example.com",
        [],
        1,
        False,
        "Ünïcödé über UTF-7.",
        "grüss test",
        "1",
        None,
    ),
    "charset_windows_1252": (
        "Euro€ test",
        "alice@example.com",
        [],
        1,
        False,
        "“Quoted” – 50€.",
        "euro€ test",
        "1",
        None,
    ),
    "deeply_nested": (
        "Deep",
        "alice@example.com",
        [],
        1,
        False,
        "--d48 Content-Type: mult",
        "deep",
        DEEP_TEXT_PART,
        None,
    ),
    "dsn_report": (
        "Undelivered Mail Returned to Sender",
        "MAILER-DAEMON@mx.example.com",
        ["Hello nobody.eml"],
        4,
        True,
        "This is the mail system ",
        "undelivered mail returned to sender",
        "1",
        None,
    ),
    "empty": ("", None, [], 1, False, "", "", "1", None),
    "encoded_rfc822": (
        "Base64 encoded rfc822",
        "alice@example.com",
        ["part-2.eml"],
        2,
        True,
        "Inside.",
        "base64 encoded rfc822",
        "1",
        None,
    ),
    "forwarded_rfc822": (
        "Fwd: Original report",
        "alice@example.com",
        ["Original report.eml"],
        4,
        True,
        "See the forwarded messag",
        "original report",
        "1",
        None,
    ),
    "forwarded_rfc822_noname": (
        "Fw: Original report",
        "alice@example.com",
        ["Original report.eml"],
        4,
        True,
        "Forwarding inline.",
        "original report",
        "1",
        None,
    ),
    "gmail_alternative": (
        "Quarterly numbers",
        "alice@example.com",
        [],
        2,
        False,
        "The numbers are in. Reve",
        "quarterly numbers",
        "1",
        "2",
    ),
    "gmail_inline_cid": (
        "Look at this chart",
        "alice@example.com",
        ["chart.png"],
        3,
        False,
        "Chart below: [image: cha",
        "look at this chart",
        "1.1",
        "1.2",
    ),
    "gmail_mixed_attachment": (
        "Contract draft",
        "alice@example.com",
        ["contract-v2.pdf"],
        3,
        True,
        "Draft attached, please r",
        "contract draft",
        "1.1",
        "1.2",
    ),
    "group_addresses": (
        "Group syntax",
        "alice@example.com",
        [],
        1,
        False,
        "To a group.",
        "group syntax",
        "1",
        None,
    ),
    "header_8bit_latin1": (
        "Grüße aus Köln",
        "alice@example.com",
        [],
        1,
        False,
        "Body",
        "grüsse aus köln",
        "1",
        None,
    ),
    "header_8bit_utf8": (
        "Привет, мир",
        "dmitry@пример.рф",
        [],
        1,
        False,
        "Тело письма.",
        "привет, мир",
        "1",
        None,
    ),
    "header_only": ("Nothing below", "alice@example.com", [], 1, False, "", "nothing below", "1", None),
    "html_only": (
        "Your weekly newsletter",
        "alice@example.com",
        [],
        1,
        False,
        "Weekly news Item one & i",
        "your weekly newsletter",
        None,
        "1",
    ),
    "idn_addresses": ("IDN", "joerg@xn--bcher-kva.example", [], 1, False, "IDN domains.", "idn", "1", None),
    "invalid_qp": (
        "Invalid quoted-printable",
        "alice@example.com",
        [],
        1,
        False,
        "Price =ZZ 100EUR € and a",
        "invalid quoted-printable",
        "1",
        None,
    ),
    "mailing_list_digest": (
        "dev Digest, Vol 42, Issue 7",
        "alice@example.com",
        ["Topic 1.eml", "Topic 2.eml", "Topic 3.eml"],
        7,
        True,
        "Today's Topics: 1. Topic",
        "dev digest, vol 42, issue 7",
        "1",
        None,
    ),
    "mailing_list_reply": (
        "Re: [python-dev] AW: Fwd: RE[2]: PEP 999 discussion",
        "alice@example.com",
        [],
        1,
        False,
        "> earlier text I agree w",
        "pep 999 discussion",
        "1",
        None,
    ),
    "missing_headers": ("", None, [], 1, False, "No from, no date, no sub", "", "1", None),
    "mixed_crlf_lf": (
        "Mixed line endings",
        "alice@example.com",
        [],
        2,
        False,
        "LF part.",
        "mixed line endings",
        "1",
        None,
    ),
    "multipart_without_boundary": (
        "No boundary parameter",
        "alice@example.com",
        [],
        1,
        False,
        "Plain words only.",
        "no boundary parameter",
        "1",
        None,
    ),
    "nested_prefix_boundaries": (
        "Prefix-sharing boundaries",
        "alice@example.com",
        ["t.csv"],
        3,
        True,
        "Inner plain.",
        "prefix-sharing boundaries",
        "1.1",
        "1.2",
    ),
    "no_blank_line": ("Only headers", "alice@example.com", [], 1, False, "", "only headers", "1", None),
    "no_blank_line_body_glued": (
        "Glued body",
        "alice@example.com",
        [],
        1,
        False,
        "This line is body text w",
        "glued body",
        "1",
        None,
    ),
    "nul_bytes": ("Nul bytes", "alice@example.com", [], 1, False, "Beforeafter.", "nul bytes", "1", None),
    "outlook_related": (
        "AW: Budget 2024",
        "alice@example.com",
        ["image001.png", "Budget 2024.xlsx"],
        4,
        True,
        "Grüße, anbei das Budget.",
        "budget 2024",
        "1.1.1",
        "1.1.2",
    ),
    "outlook_winmail": (
        "RE: Meeting notes",
        "alice@example.com",
        ["winmail.dat"],
        2,
        True,
        "Notes are in the attachm",
        "meeting notes",
        "1",
        None,
    ),
    "part_without_headers": (
        "Part without headers",
        "alice@example.com",
        [],
        1,
        False,
        "Default typed part.",
        "part without headers",
        "1",
        None,
    ),
    "pgp_encrypted": ("...", "alice@example.com", ["encrypted.asc"], 2, True, "", "...", None, None),
    "pgp_signed": (
        "Signed release announcement",
        "alice@example.com",
        [],
        2,
        False,
        "Version 2.0 is out. Enjo",
        "signed release announcement",
        "1",
        None,
    ),
    "qp_html_utf8": (
        "Bestellung bestätigt",
        "alice@example.com",
        [],
        1,
        False,
        "Ihre Bestellung wurde be",
        "bestellung bestätigt",
        None,
        "1",
    ),
    "qp_soft_breaks_long": (
        "Long QP",
        "alice@example.com",
        [],
        1,
        False,
        "Lorem ipsum dolor sit am",
        "long qp",
        "1",
        None,
    ),
    "related_start_param": (
        "Related with start",
        "alice@example.com",
        ["part-1.gif"],
        2,
        False,
        "Root document",
        "related with start",
        None,
        "2",
    ),
    "rfc2047_filename": (
        "Fichier joint été",
        "alice@example.com",
        ["été 2024.jpg"],
        2,
        True,
        "Voir la pièce jointe.",
        "fichier joint été",
        "1",
        None,
    ),
    "rfc2231_continuation": (
        "RFC 2231 filename",
        "alice@example.com",
        ["Rechnung März 2024.pdf"],
        2,
        True,
        "See attachment.",
        "rfc 2231 filename",
        "1",
        None,
    ),
    "simple_plain": (
        "Lunch tomorrow?",
        "alice@example.com",
        [],
        1,
        False,
        "Hi Bob, Lunch at noon to",
        "lunch tomorrow?",
        "1",
        None,
    ),
    "smime_enveloped": (
        "Encrypted",
        "alice@example.com",
        ["smime.p7m"],
        1,
        True,
        "",
        "encrypted",
        None,
        None,
    ),
    "smime_signed": (
        "S/MIME signed newsletter",
        "alice@example.com",
        [],
        3,
        False,
        "Newsletter body.",
        "s/mime signed newsletter",
        "1.1",
        "1.2",
    ),
    "split_multibyte_words": (
        "日本語のメール",
        "alice@example.com",
        [],
        1,
        False,
        "body",
        "日本語のメール",
        "1",
        None,
    ),
    "thunderbird_attachment": (
        "Script for the cron job",
        "alice@example.com",
        ["backup.py"],
        2,
        True,
        "Here is the script we ta",
        "script for the cron job",
        "1",
        None,
    ),
    "transport_padding_epilogue": (
        "Padding and epilogue",
        "alice@example.com",
        [],
        2,
        False,
        "Padded delimiter part.",
        "padding and epilogue",
        "1",
        None,
    ),
}

# Messages whose structure the stdlib parser reads the same way (well-formed ones).
STDLIB_AGREES = sorted(
    set(EXPECTED)
    - {
        "deeply_nested",
        "empty",
        "no_blank_line_body_glued",
        "boundary_never_appears",
        "multipart_without_boundary",
        "encoded_rfc822",
        "broken_missing_close",  # the stdlib drops the last line break of an unterminated part
        "dsn_report",  # the stdlib splits message/delivery-status into header blocks
    }
)


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.eml").read_bytes()


def test_corpus_is_large_enough_and_matches_the_table() -> None:
    names = {p.stem for p in CORPUS.glob("*.eml")}
    assert len(names) >= 45
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_metadata(name: str) -> None:
    subject, from_email, filenames, leaves, has_attachments, preview, thread, text_part, html_part = EXPECTED[
        name
    ]
    parsed = parse_message(load(name))
    assert parsed.subject == subject
    assert (parsed.from_[0].email if parsed.from_ else None) == from_email
    assert [a["filename"] for a in parsed.attachments] == filenames
    assert len([n for _, n in iter_nodes(parsed.bodystructure) if "parts" not in n]) == leaves
    assert parsed.has_attachments is has_attachments
    assert parsed.preview.startswith(preview)
    assert len(parsed.preview) <= 200
    assert parsed.thread_subject == thread
    assert parsed.text_part == text_part
    assert parsed.html_part == html_part


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_metadata_is_json_safe_for_jsonb(name: str) -> None:
    parsed = parse_message(load(name))
    encoded = json.dumps(parsed.to_json(), ensure_ascii=False)
    encoded.encode("utf-8")  # no lone surrogates
    assert "\\u0000" not in json.dumps(parsed.to_json())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_header_and_text_sections_split_the_message_at_header_size(name: str) -> None:
    raw = load(name)
    parsed = parse_message(raw)
    assert section_bytes(raw, parsed.bodystructure, "") == raw
    assert section_bytes(raw, parsed.bodystructure, "HEADER") == raw[: parsed.header_size]
    assert section_bytes(raw, parsed.bodystructure, "TEXT") == raw[parsed.header_size :]


def stdlib_leaves(msg: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    """Leaf parts with IMAP section numbers, walking the stdlib's tree."""
    if not msg.is_multipart():
        yield (prefix + "1" if not prefix else prefix.rstrip(".")), msg
        return
    for index, part in enumerate(msg.get_payload()):
        section = f"{prefix}{index + 1}"
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload(0)
            if inner.is_multipart():
                yield from stdlib_leaves(inner, section + ".")
            else:
                yield section + ".1", inner
        elif part.is_multipart():
            yield from stdlib_leaves(part, section + ".")
        else:
            yield section, part


@pytest.mark.parametrize("name", STDLIB_AGREES)
def test_leaf_sections_equal_what_the_stdlib_parser_gives(name: str) -> None:
    raw = load(name)
    parsed = parse_message(raw)
    ours = {
        section: node
        for section, node in iter_nodes(parsed.bodystructure)
        if "parts" not in node and "message" not in node
    }
    theirs = dict(stdlib_leaves(message_from_bytes(raw, policy=compat32)))
    assert set(ours) == set(theirs)
    for section, part in theirs.items():
        payload = part._payload  # the undecoded str, before compat32 re-decodes 8-bit text
        assert isinstance(payload, str)
        assert section_bytes(raw, parsed.bodystructure, section) == payload.encode("ascii", "surrogateescape")
        if name not in ("bad_base64",):  # the stdlib gives up on bad base64 and returns it raw
            assert decoded_part(raw, ours[section]) == part.get_payload(decode=True)
