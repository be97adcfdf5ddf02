"""Display bodies, preview, indexed text and attachments."""

from __future__ import annotations

import re
from pathlib import Path

from mailcore.mime import decoded_part, html_to_text, iter_nodes, parse_message

CORPUS = Path(__file__).parent / "corpus"


def parsed(name: str):  # type: ignore[no-untyped-def]
    return parse_message((CORPUS / f"{name}.eml").read_bytes())


def test_html_only_message_is_converted_for_preview_and_index() -> None:
    message = parsed("html_only")
    assert message.html_part == "1" and message.text_part is None
    assert message.preview == "Weekly news Item one & item two."
    assert "secret" not in message.text and "color" not in message.text and "tracking" not in message.text


def test_html_to_text_is_linear_on_unclosed_constructs() -> None:
    assert html_to_text("<p>a<br>b</p>") == "\na\nb\n"
    assert html_to_text("<script>never closed " + "<" * 100000).strip() == ""
    assert html_to_text("x " + "<a " * 100000).startswith("x ")


def test_index_text_takes_one_alternative_and_decodes_charsets() -> None:
    message = parsed("outlook_related")
    assert message.text.count("anbei das Budget") == 1
    assert "Grüße" in message.text


def test_forwarded_message_is_an_attachment_and_its_text_is_indexed() -> None:
    message = parsed("forwarded_rfc822")
    assert message.attachments == [
        {
            "part": "2",
            "filename": "Original report.eml",
            "content_type": "message/rfc822",
            "size": message.bodystructure["parts"][1]["size"],
            "content_id": None,
            "disposition": "attachment",
        }
    ]
    assert "The original text." in message.text


def test_cid_images_are_inline_and_do_not_count_as_attachments() -> None:
    message = parsed("gmail_inline_cid")
    assert message.attachments[0]["disposition"] == "inline"
    assert message.attachments[0]["content_id"] == "ii_lt1abc0"
    assert message.has_attachments is False


def test_attachment_size_estimates_decoded_size() -> None:
    raw = (CORPUS / "gmail_mixed_attachment.eml").read_bytes()
    message = parse_message(raw)
    node = dict(iter_nodes(message.bodystructure))["2"]
    assert message.attachments[0]["size"] == len(decoded_part(raw, node))


def test_calendar_invitation() -> None:
    message = parsed("calendar_invite")
    calendar = [a for a in message.attachments if a["content_type"] == "text/calendar"]
    assert calendar and calendar[0]["part"] == "1.3"
    assert message.text_part == "1.1" and message.html_part == "1.2"


def test_signed_message_hides_signature_and_encrypted_shows_payload() -> None:
    assert parsed("pgp_signed").attachments == []
    assert parsed("smime_signed").attachments == []
    encrypted = parsed("pgp_encrypted")
    assert [a["filename"] for a in encrypted.attachments] == ["encrypted.asc"]


def test_dsn_text_and_returned_message() -> None:
    message = parsed("dsn_report")
    assert "Status: 5.1.1" in message.text
    assert [a["content_type"] for a in message.attachments] == ["message/rfc822"]


def test_qp_and_legacy_charsets_reach_preview() -> None:
    assert parsed("qp_html_utf8").preview.startswith(
        "Ihre Bestellung wurde bestätigt. Vielen Dank für Ihren Einkauf bei uns, wir freuen"
    )
    assert parsed("charset_koi8_r").preview == "Съешь же ещё этих мягких булок."
    assert parsed("invalid_qp").preview.startswith("Price =ZZ 100EUR €")


def test_digest_parts_default_to_message_rfc822() -> None:
    message = parsed("mailing_list_digest")
    digest = message.bodystructure["parts"][1]
    assert [(p["type"], p["subtype"]) for p in digest["parts"]] == [("message", "rfc822")] * 3
    assert digest["parts"][0]["message"]["envelope"][1] == "Topic 1"


def test_preview_equals_collapsing_the_whole_4000_characters() -> None:
    """preview_text collapses a short prefix first; it must give what collapsing the whole
    MAX_PREVIEW_CHARS * 20 characters gives, whitespace-heavy or not."""
    import random

    from mailcore.mime.parse import MAX_PREVIEW_CHARS, preview_text

    def reference(text: str) -> str:
        return re.sub(r"\s+", " ", text[: MAX_PREVIEW_CHARS * 20]).strip()[:MAX_PREVIEW_CHARS]

    rng = random.Random(6533)
    alphabet = ["a", "b", " ", "\t", "\r\n", "\n\n\n", "\u00a0", "\u2003", "      ", "é"]
    samples = ["", " ", "x", " " * 5000, "a" * 5000, "a " * 3000, " " * 3990 + "tail", "word " * 41]
    for _ in range(400):
        weights = [rng.random() for _ in alphabet]
        samples.append("".join(rng.choices(alphabet, weights, k=rng.choice([10, 199, 201, 450, 1700, 5000]))))
    for sample in samples:
        assert preview_text(sample) == reference(sample), repr(sample[:80])
