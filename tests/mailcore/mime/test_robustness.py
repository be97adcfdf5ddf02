"""parse_message never raises, stays linear, and keeps what it stores small."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailcore.mime import decoded_part, iter_nodes, parse_message, section_bytes
from mailcore.mime.bodystructure import MAX_DEPTH
from mailcore.mime.parse import MAX_PREVIEW_CHARS, MAX_TEXT_CHARS

CORPUS = Path(__file__).parent / "corpus"
ROOT = Path(__file__).resolve().parents[3]


def test_empty_input() -> None:
    parsed = parse_message(b"")
    assert parsed.subject == "" and parsed.header_size == 0 and parsed.date is None
    assert parsed.bodystructure["type"] == "text" and parsed.bodystructure["size"] == 0
    assert section_bytes(b"", parsed.bodystructure, "1") == b""


def test_header_only_message_without_body() -> None:
    raw = (CORPUS / "header_only.eml").read_bytes()
    parsed = parse_message(raw)
    assert parsed.header_size == len(raw)
    assert parsed.bodystructure["size"] == 0 and parsed.bodystructure["lines"] == 0


def test_missing_headers_are_empty_not_errors() -> None:
    parsed = parse_message((CORPUS / "missing_headers.eml").read_bytes())
    assert parsed.from_ == [] and parsed.date is None and parsed.subject == "" and parsed.message_id == ""
    assert parsed.envelope == [None] * 10


def test_unparseable_date_is_none() -> None:
    parsed = parse_message(b"Date: the day after tomorrow\r\nSubject: x\r\n\r\nbody\r\n")
    assert parsed.date is None
    parsed = parse_message(b"Date: Tue, 12 Mar 2024 09:15:00 -0000\r\n\r\n")
    assert parsed.date is not None and parsed.date.tzinfo is not None


def test_twenty_megabyte_single_line_is_linear_and_capped() -> None:
    raw = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n" + b"a" * (20 * 1024 * 1024)
    started = time.perf_counter()
    parsed = parse_message(raw)
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0
    assert parsed.bodystructure["size"] == 20 * 1024 * 1024
    assert len(parsed.text) <= MAX_TEXT_CHARS
    assert len(parsed.preview) == MAX_PREVIEW_CHARS
    no_header = parse_message(b"x" * (20 * 1024 * 1024))
    assert no_header.header_size == 0


def test_twenty_megabyte_header_line() -> None:
    raw = b"Subject: " + b"s" * (20 * 1024 * 1024)
    parsed = parse_message(raw)
    assert parsed.header_size == len(raw) and len(parsed.subject) == 20 * 1024 * 1024


@pytest.mark.parametrize("levels", [100, 5000])
def test_deep_nesting_is_capped_without_recursion_errors(levels: int) -> None:
    body = b"".join(
        b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1) for i in range(levels)
    )
    raw = (
        b'Subject: deep\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
        + body
        + b"--b%d\r\n\r\nbottom\r\n" % levels
    )
    parsed = parse_message(raw)
    depth = max(section.count(".") + 1 for section, _ in iter_nodes(parsed.bodystructure) if section)
    assert depth <= MAX_DEPTH + 1
    assert parsed.subject == "deep"


def test_many_parts_are_capped() -> None:
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(20000))
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body + b"--b--\r\n"
    parsed = parse_message(raw)
    assert 1 <= len(parsed.bodystructure["parts"]) <= 5000


def test_nul_bytes_do_not_reach_stored_strings() -> None:
    parsed = parse_message((CORPUS / "nul_bytes.eml").read_bytes())
    assert parsed.subject == "Nul bytes"
    assert "\x00" not in json.dumps(parsed.to_json(), ensure_ascii=False)


def test_mutated_corpus_never_raises() -> None:
    rng = random.Random(20240312)
    samples = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml")) if p.stat().st_size < 20000]
    for _ in range(600):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 8)):
            if not data:
                break
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[at] = rng.randrange(256)
            elif action < 0.7:
                del data[at : at + rng.randint(1, 40)]
            else:
                data[at:at] = rng.choice([b"\r\n", b"\n\n", b"--", b"=?", b"\x00", b'"', b"<", b"boundary="])
        raw = bytes(data)
        parsed = parse_message(raw)
        json.dumps(parsed.to_json(), ensure_ascii=False).encode("utf-8")
        for section, node in iter_nodes(parsed.bodystructure):
            assert 0 <= node["header_start"] <= node["header_end"] <= node["body_end"] <= len(raw)
            decoded_part(raw, node)
            if section:
                section_bytes(raw, parsed.bodystructure, section)


def test_importing_the_package_does_not_import_django() -> None:
    code = "import sys, mailcore.mime; mailcore.mime.parse_message(b'x'); assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_pathological_headers_stay_fast() -> None:
    started = time.perf_counter()
    parse_message(
        b"Subject: " + b"=?utf-8?q?" * 200000 + b"\r\n"
        b"To: " + b'[("<' * 100000 + b"\r\n"
        b"Cc: " + b"Re: [x] " * 200000 + b"\r\n\r\nbody"
    )
    normalize = parse_message(b"Subject: " + b"Re: [x] Fwd: " * 200000 + b"end\r\n\r\n").thread_subject
    assert time.perf_counter() - started < 3.0
    assert normalize == "end" or len(normalize) <= 1000


def test_mbox_from_line_is_skipped() -> None:
    parsed = parse_message(
        b"From alice@example.com Tue Mar 12 09:15:00 2024\r\nSubject: mbox\r\n\r\nbody\r\n"
    )
    assert parsed.subject == "mbox" and parsed.preview == "body"


@pytest.mark.parametrize(
    "first",
    [b"From : Carol <carol@example.org>", b"From\t: Carol <carol@example.org>", b"From  :carol@example.org"],
)
def test_a_first_line_from_with_space_before_the_colon_is_the_from_field(first: bytes) -> None:
    # RFC 5322 §4.5.x (obs-optional: WSP before the colon): a field, not an mbox "From " line.
    parsed = parse_message(first + b"\r\nSubject: odd\r\n\r\nbody\r\n")
    assert [a.email for a in parsed.from_] == ["carol@example.org"]
    assert parsed.envelope[2][0][2:] == ["carol", "example.org"]
    assert parsed.subject == "odd"


@pytest.mark.parametrize(
    "first",
    [
        b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011",
        b"From alice@example.com Tue Mar 12 09:15:00 +0000 2024",
        b"From alice@example.com",  # no date, but not a field either: still not the header's end
    ],
)
def test_an_mbox_from_line_of_any_form_is_skipped(first: bytes) -> None:
    parsed = parse_message(first + b"\r\nFrom: carol@example.org\r\nSubject: mbox\r\n\r\nbody\r\n")
    assert [a.email for a in parsed.from_] == ["carol@example.org"]
    assert parsed.subject == "mbox" and parsed.preview == "body"


def test_an_internal_error_still_gives_a_servable_structure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mailcore.mime import parse as parse_module

    def broken(raw: bytes) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(parse_module, "_parse", broken)
    raw = b"Subject: x\r\n\r\nbody\r\n"
    parsed = parse_message(raw)
    assert parsed.header_size == 14
    assert section_bytes(raw, parsed.bodystructure, "1") == b"body\r\n"
    assert section_bytes(raw, parsed.bodystructure, "HEADER") == b"Subject: x\r\n\r\n"
    assert "MIME parsing failed" in caplog.text
