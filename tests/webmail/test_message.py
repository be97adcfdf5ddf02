from __future__ import annotations

import base64

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mailcore import store
from mailcore.models import Account, Folder, Message
from tests.webmail.conftest import Deliver, folder_of

pytestmark = pytest.mark.django_db

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def rich_message(html: str, *, subject: str = "Rich", message_id: str = "rich-1@example.org") -> bytes:
    png = base64.encodebytes(PNG).decode().replace("\n", "\r\n")
    return (
        "From: Carol <carol@example.org>\r\nTo: alice@a.test\r\nSubject: " + subject + "\r\n"
        "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <" + message_id + ">\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        "--outer\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n"
        "--rel\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain version.\r\n"
        "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--alt--\r\n"
        "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + png + "--rel--\r\n"
        "--outer\r\nContent-Type: text/html; name=\"page.html\"\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n"
        "<script>alert(1)</script>\r\n"
        "--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r\u00e9sum\u00e9.pdf\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"%PDF-1.4 fake").decode() + "\r\n--outer--\r\n"
    ).encode()


HTML = ('<p>Hello <b>Alice</b></p><img src="cid:logo@x"><img src="https://tracker.example/p.gif">'
        '<script>alert(1)</script>')


@pytest.fixture
def rich(alice: Account, deliver: Deliver) -> Message:
    return deliver(raw=rich_message(HTML))


def test_opening_a_message_shows_headers_marks_it_read_and_frames_the_html(alice_client: Client, rich: Message) -> None:
    page = alice_client.get(f"/m/{rich.pk}/").content.decode()
    assert "Carol" in page and "carol@example.org" in page and "Rich" in page
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "allow-scripts" not in page and "allow-same-origin" not in page
    assert f'src="/m/{rich.pk}/body/"' in page
    assert "Show images" in page
    for label in ("Reply", "Reply all", "Forward", "Delete", "Archive"):
        assert f">{label}<" in page
    rich.refresh_from_db()
    assert rich.seen


def test_body_is_sanitised_and_served_under_a_strict_csp(alice_client: Client, rich: Message) -> None:
    response = alice_client.get(f"/m/{rich.pk}/body/")
    body = response.content.decode()
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "https:" not in csp
    assert "<b>Alice</b>" in body and "<script" not in body and "tracker.example" not in body
    assert "/inline/" in body  # the cid: image, rewritten


def test_show_images_allows_remote_images(alice_client: Client, rich: Message) -> None:
    response = alice_client.get(f"/m/{rich.pk}/body/?images=1")
    assert "tracker.example" in response.content.decode()
    assert "https:" in response["Content-Security-Policy"]


def test_cid_image_is_served_by_its_signed_url_without_a_session(alice_client: Client, rich: Message) -> None:
    body = alice_client.get(f"/m/{rich.pk}/body/").content.decode()
    url = body.split('src="', 1)[1].split('"', 1)[0]
    response = Client().get(url.replace("http://testserver", ""))
    assert response.status_code == 200 and response.content == PNG
    assert response["Content-Type"] == "image/png" and response["X-Content-Type-Options"] == "nosniff"
    assert Client().get("/inline/forged-token/").status_code == 404


def test_attachments_download_as_attachments(alice_client: Client, rich: Message) -> None:
    parts = {a["filename"]: a["part"] for a in rich.attachments}
    response = alice_client.get(f"/m/{rich.pk}/part/{parts['résumé.pdf']}/")
    assert response.status_code == 200 and response.content == b"%PDF-1.4 fake"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    html = alice_client.get(f"/m/{rich.pk}/part/{parts['page.html']}/")
    assert html["Content-Type"] == "application/octet-stream" and html["Content-Disposition"].startswith("attachment")


def test_another_accounts_message_is_404_everywhere(mallory_client: Client, rich: Message) -> None:
    part = rich.attachments[0]["part"]
    for url in (f"/m/{rich.pk}/", f"/m/{rich.pk}/body/", f"/m/{rich.pk}/part/{part}/"):
        assert mallory_client.get(url).status_code == 404, url


def test_missing_attachment_part_is_404(alice_client: Client, rich: Message) -> None:
    assert alice_client.get(f"/m/{rich.pk}/part/9.9/").status_code == 404


def test_plain_text_message_is_shown_as_text(alice_client: Client, deliver: Deliver) -> None:
    m = deliver(body="<b>not bold</b>\r\nsecond line\r\n")
    page = alice_client.get(f"/m/{m.pk}/").content.decode()
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<iframe" not in page


def test_conversation_shows_the_thread_across_folders_with_read_ones_collapsed(
    alice_client: Client, alice: Account, deliver: Deliver
) -> None:
    first = deliver(subject="Trip", body="Where to?\r\n", message_id="t1@example.org")
    alice_client.get(f"/m/{first.pk}/")  # read
    store.message_move(account=alice, source=folder_of(alice, Folder.SpecialUse.INBOX),
                       uids=[first.entries.get().uid], target=folder_of(alice, Folder.SpecialUse.ARCHIVE))
    second = deliver(subject="Re: Trip", body="The sea.\r\n", message_id="t2@example.org",
                     extra_headers="In-Reply-To: <t1@example.org>\r\nReferences: <t1@example.org>\r\n")
    assert second.thread_id == first.thread_id
    page = alice_client.get(f"/m/{second.pk}/").content.decode()
    assert f'id="msg-{first.pk}"' in page and f'id="msg-{second.pk}"' in page
    assert 'class="msg collapsed"' in page and "The sea." in page
    assert ">Archive</span>" in page


def test_opening_a_conversation_reads_only_the_bodies_it_shows(
    alice_client: Client, alice: Account, deliver: Deliver
) -> None:
    # Five messages: the first three read (collapsed), the fourth unread, the fifth opened.
    filler = "words " * 60 + "\r\n"  # past the list preview, so only a shown body holds the tail
    thread = [deliver(subject="Trip", body=f"{filler}Tail {i}.\r\n", message_id=f"t{i}@example.org",
                      extra_headers=f"In-Reply-To: <t{i - 1}@example.org>\r\n" if i else "")
              for i in range(5)]
    assert len({m.thread_id for m in thread}) == 1
    Message.objects.filter(pk__in=[m.pk for m in thread[:3]]).update(seen=True)
    with CaptureQueriesContext(connection) as queries:
        page = alice_client.get(f"/m/{thread[4].pk}/").content.decode()
    assert all(f'id="msg-{m.pk}"' in page for m in thread)
    assert page.count('class="msg collapsed"') == 3
    assert "Tail 3." in page and "Tail 4." in page and "Tail 0." not in page
    # The opened message comes with its blob; one more query reads the unread one's, and no
    # query reads a collapsed message's blob or anyone's search columns.
    blob_reads = [q["sql"] for q in queries.captured_queries if "mailcore_blob" in q["sql"]]
    assert len(blob_reads) == 2
    assert f'"mailcore_blob"."id" IN ({thread[3].blob_id})' in blob_reads[1]
    assert not any("search_text" in q["sql"] for q in queries.captured_queries)


def test_a_message_deleted_while_its_conversation_opens_is_left_out(alice: Account, deliver: Deliver) -> None:
    from mailcore.models import Blob
    from webmail import selectors

    first = deliver(subject="Trip", message_id="t0@example.org")
    second = deliver(subject="Re: Trip", message_id="t1@example.org", extra_headers="In-Reply-To: <t0@example.org>\r\n")
    thread = selectors.thread_for_user(alice, second)
    # Between reading the thread and its bodies, another session expunges the first message
    # and its blob goes with it.
    Message.objects.filter(pk=first.pk).delete()
    Blob.objects.filter(pk=first.blob_id).delete()
    assert selectors.blobs_attached(thread) == [thread[0]]
    assert bytes(thread[1].blob.data).endswith(b"\r\n")


def test_conversation_view_off_shows_one_message(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    first = deliver(subject="Trip", message_id="t1@example.org")
    second = deliver(subject="Re: Trip", extra_headers="In-Reply-To: <t1@example.org>\r\n")
    alice.conversation_view = False
    alice.save()
    page = alice_client.get(f"/m/{second.pk}/").content.decode()
    assert f'id="msg-{first.pk}"' not in page
