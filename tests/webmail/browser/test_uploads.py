"""Attachment uploads in a real Chromium: the progress bar, the stated limit, over-limit files,
and the server's early 413."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from mailcore.models import Account, Folder, FolderEntry, Message

from .conftest import screenshot, sign_in

BASE_URL_WARNING = "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings(BASE_URL_WARNING)]

# Upload speed for the progress test (Chromium's network emulation), so that a few MB take
# seconds on loopback and the bar has time to move.
UPLOAD_BYTES_PER_SECOND = 1_500_000


def _fill_message(page: Any) -> None:
    page.get_by_role("link", name="Compose").click()
    page.get_by_label("To", exact=True).fill("bob@b.test")
    page.get_by_label("Subject").fill("Big file")
    page.get_by_label("Message").fill("Here it is.")


def test_a_large_upload_shows_its_progress(page: Any, web_server: str, people: dict[str, Account],
                                           tmp_path: Path) -> None:
    big = tmp_path / "video.bin"
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    sign_in(page, web_server, "alice@a.test")
    _fill_message(page)
    expect(page.locator("#limit-note")).to_have_text(re.compile(r"^Up to \d+(\.\d)?\sMB in total\.$"))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": UPLOAD_BYTES_PER_SECOND})
    page.get_by_label("Attach files").set_input_files(str(big))
    page.get_by_role("button", name="Send").click()
    bar = page.get_by_role("progressbar", name="Upload progress")
    expect(bar).to_be_visible(timeout=5000)
    screenshot(page, "upload-progress")
    page.wait_for_url(re.compile(r".*/f/\d+/$"), timeout=60000)
    received = Message.objects.get(account=people["bob"])
    assert received.attachments[0]["size"] == big.stat().st_size


def test_progress_moves_through_intermediate_values(page: Any, web_server: str, people: dict[str, Account],
                                                    tmp_path: Path) -> None:
    big = tmp_path / "photos.zip"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    sign_in(page, web_server, "alice@a.test")
    _fill_message(page)
    values: list[int] = []
    page.expose_function("reportProgress", lambda v: values.append(int(v)))
    page.evaluate("""() => document.addEventListener("htmx:xhr:progress", () => {
        const bar = document.getElementById("upload-progress");
        if (!bar.hidden) window.reportProgress(bar.value);
    })""")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": UPLOAD_BYTES_PER_SECOND})
    page.get_by_label("Attach files").set_input_files(str(big))
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"), timeout=60000)
    assert any(0 < v < 100 for v in values), values
    assert values == sorted(values)


def test_an_over_limit_file_is_refused_with_a_message_and_nothing_typed_is_lost(
    page: Any, web_server: str, people: dict[str, Account]
) -> None:
    sign_in(page, web_server, "alice@a.test")
    _fill_message(page)
    limit = int(page.locator("#limit-note").get_attribute("data-limit"))
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/compose/") else None)
    page.get_by_label("Attach files").set_input_files(
        {"name": "huge.iso", "mimeType": "application/octet-stream", "buffer": b"\0" * (limit + 1)})
    note = page.locator("#limit-note")
    expect(note).to_have_attribute("role", "alert")
    expect(note).to_contain_text("the limit is")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#send-error")).to_contain_text("over the limit")
    screenshot(page, "upload-over-limit")
    assert posts == []
    expect(page.get_by_label("To", exact=True)).to_have_value("bob@b.test")
    expect(page.get_by_label("Subject")).to_have_value("Big file")
    expect(page.get_by_label("Message")).to_have_value("Here it is.")
    assert not Message.objects.filter(account=people["bob"]).exists()
    # Without the file it goes.
    page.get_by_label("Attach files").set_input_files([])
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/f/\d+/$"))
    assert Message.objects.get(account=people["bob"]).subject == "Big file"
    assert FolderEntry.objects.filter(folder__account=people["alice"],
                                      folder__special_use=Folder.SpecialUse.SENT).count() == 1


def test_the_server_answers_413_to_an_oversized_body_it_was_told_about(web_server: str,
                                                                       people: dict[str, Account]) -> None:
    """A raw client announcing a body over MAX_REQUEST_BODY, and sending it: 413, not Django's work.
    (daphne reads the body before it calls the application; uvicorn would answer at the headers.)"""
    from django.conf import settings

    parts = urlsplit(web_server)
    size = int(settings.MAX_REQUEST_BODY) + 1
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(b"POST /compose/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     + f"Content-Length: {size}\r\n\r\n".encode())
        chunk = b"\0" * (1 << 20)
        left = size
        began = time.monotonic()
        try:
            while left > 0:
                conn.sendall(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server that stops reading early is fine too
        reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"larger than this server accepts" in reply
    assert time.monotonic() - began < 30
