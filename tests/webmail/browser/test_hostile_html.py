"""Hostile HTML mail: no script runs and nothing remote loads unless the reader allows images.

A "tracker" HTTP server on 127.0.0.1 stands for the outside internet: every vector in the
corpus points at it, and it counts what reaches it. The page's requests and console are
watched as well.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from mailcore import store
from mailcore.models import Account

from .conftest import sign_in
from .test_journeys import BASE_URL_WARNING

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings(BASE_URL_WARNING)]

GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


class _Tracker(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(GIF)))
        self.end_headers()
        self.wfile.write(GIF)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def tracker() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Tracker,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def corpus(t: str) -> str:
    return f"""
<html><head>
<meta http-equiv="refresh" content="0;url={t}/meta-refresh">
<base href="{t}/base/">
<link rel="stylesheet" href="{t}/link.css">
<style>@import url({t}/import.css); body {{ background: url({t}/style-bg.png) }}</style>
<script>console.log("PWNED script"); fetch("{t}/script-fetch"); alert(1)</script>
</head><body onload="console.log('PWNED onload')">
<p id="content">Quarterly update</p>
<img src="{t}/pixel.gif" alt="tracker">
<img src="x" onerror="console.log('PWNED onerror'); new Image().src='{t}/onerror'">
<img srcset="{t}/srcset.gif 1x">
<a href="javascript:console.log('PWNED link')">click me</a>
<div style="background-image: url('{t}/inline-style.png')">styled</div>
<div style="width: expression(alert(1))">ie</div>
<svg onload="console.log('PWNED svg')"><image href="{t}/svg-image.png"/><script>console.log("PWNED svg script")</script></svg>
<form action="{t}/form"><input name="password"><button>Go</button></form>
<iframe src="{t}/iframe"></iframe>
<iframe srcdoc="<script>console.log('PWNED srcdoc')</script><img src='{t}/srcdoc.png'>"></iframe>
<object data="{t}/object"></object><embed src="{t}/embed">
<video poster="{t}/poster.png" src="{t}/video.mp4"></video>
<audio src="{t}/audio.mp3" autoplay></audio>
<table background="{t}/table-bg.png"><tr><td>cell</td></tr></table>
<math><mtext><script>console.log("PWNED math")</script></mtext></math>
</body></html>"""


def _hostile_mail(t: str) -> bytes:
    html = corpus(t).replace("\n", "\r\n")
    return (
        "From: Mallory <mallory@evil.example>\r\nTo: alice@a.test\r\nSubject: Quarterly update\r\n"
        "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <hostile@evil.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n"
    ).encode()


def test_hostile_html_runs_no_script_and_loads_nothing_remote(
    page: Any, web_server: str, people: dict[str, Account], tracker: tuple[str, list[str]]
) -> None:
    origin, hits = tracker
    store.message_deliver(raw=_hostile_mail(origin), recipients=["alice@a.test"])
    console: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, web_server, "alice@a.test")
    page.get_by_role("link", name="Quarterly update").click()
    frame = page.frame_locator("iframe.body")
    expect(frame.get_by_text("Quarterly update")).to_be_visible()
    page.wait_for_timeout(1500)
    assert not [c for c in console if "PWNED" in c]
    assert not dialogs
    assert hits == []
    assert not [u for u in requests if u.startswith(origin)]
    assert page.url.startswith(web_server)

    # The reader allows images: now (and only now) the tracker pixel loads; still no script.
    page.get_by_role("link", name="Show images").click()
    expect(frame.get_by_text("Quarterly update")).to_be_visible()
    page.wait_for_timeout(1500)
    assert "/pixel.gif" in hits
    assert set(hits) <= {"/pixel.gif"}
    assert not [c for c in console if "PWNED" in c] and not dialogs
