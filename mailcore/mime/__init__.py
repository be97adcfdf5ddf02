"""MIME parsing done once at delivery: pure Python, no ORM.

``parse_message(raw)`` gives the metadata the store keeps (addresses, threading ids, IMAP
ENVELOPE and BODYSTRUCTURE with byte offsets, attachments, preview, text to index);
``section_bytes`` and ``decoded_part`` serve IMAP sections and downloads from those offsets.
"""

from mailcore.mime.addresses import Address
from mailcore.mime.bodystructure import iter_nodes
from mailcore.mime.charsets import decode_bytes
from mailcore.mime.headers import decode_header_value, decode_params
from mailcore.mime.parse import (
    ParsedMessage,
    html_to_text,
    normalize_thread_subject,
    parse_message,
)
from mailcore.mime.sections import decode_transfer, decoded_part, section_bytes

__all__ = [
    "Address",
    "ParsedMessage",
    "decode_bytes",
    "decode_header_value",
    "decode_params",
    "decode_transfer",
    "decoded_part",
    "html_to_text",
    "iter_nodes",
    "normalize_thread_subject",
    "parse_message",
    "section_bytes",
]
