from __future__ import annotations

import email
import email.policy

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from mailcore.models import Account, Folder, FolderEntry, Message, OutboundRecipient
from tests.webmail.conftest import Deliver, folder_of

pytestmark = pytest.mark.django_db


def _in(account: Account, special_use: str) -> list[Message]:
    folder = folder_of(account, special_use)
    return [e.message for e in FolderEntry.objects.filter(folder=folder).select_related("message").order_by("uid")]


def _parsed(message: Message) -> email.message.EmailMessage:
    return email.message_from_bytes(bytes(message.blob.data), policy=email.policy.default)  # type: ignore[return-value]


def test_compose_page_has_the_labelled_fields(alice_client: Client) -> None:
    page = alice_client.get("/compose/").content.decode()
    for label in ("To", "Cc", "Bcc", "Subject", "Message"):
        assert f">{label}</label>" in page
    assert ">Send</button>" in page


def test_send_to_a_local_user_delivers_now_and_files_a_copy_in_sent(alice_client: Client, alice: Account, bob: Account) -> None:
    response = alice_client.post("/compose/", {"to": "Bob <bob@b.test>", "subject": "Lunch?", "body": "At noon.\r\n"})
    assert response.status_code == 302
    [received] = _in(bob, Folder.SpecialUse.INBOX)
    [sent] = _in(alice, Folder.SpecialUse.SENT)
    assert received.subject == "Lunch?" and sent.seen
    parsed = _parsed(received)
    assert parsed["Message-ID"].endswith("@localhost>")
    assert "alice@a.test" in parsed["From"] and "Alice Liddell" in parsed["From"]
    assert parsed.get_content().strip() == "At noon."


def test_remote_recipients_are_queued_and_bcc_is_not_in_the_headers(alice_client: Client, alice: Account, bob: Account) -> None:
    alice_client.post("/compose/", {"to": "bob@b.test", "bcc": "dave@remote.example", "subject": "s", "body": "b"})
    assert list(OutboundRecipient.objects.values_list("address", flat=True)) == ["dave@remote.example"]
    [received] = _in(bob, Folder.SpecialUse.INBOX)
    assert b"dave@remote.example" not in bytes(received.blob.data)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"to": "", "subject": "kept subject", "body": "kept body"}, "Add at least one recipient."),
        ({"to": "not an address", "subject": "kept subject", "body": "kept body"}, "is not a valid email address"),
        ({"to": "bob@b.test, @@", "subject": "kept subject", "body": "kept body"}, "is not a valid"),
    ],
)
def test_bad_input_gets_a_clear_message_and_keeps_what_was_typed(alice_client: Client, bob: Account,
                                                                   fields: dict[str, str], error: str) -> None:
    response = alice_client.post("/compose/", fields)
    page = response.content.decode()
    assert response.status_code == 400
    assert error in page
    assert 'value="kept subject"' in page and "kept body</textarea>" in page
    assert fields["to"] in page
    assert not Message.objects.filter(account=bob).exists()


def test_unknown_local_mailbox_is_refused_and_nothing_is_sent(alice_client: Client, alice: Account) -> None:
    response = alice_client.post("/compose/", {"to": "nobody@a.test", "subject": "s", "body": "b"})
    assert response.status_code == 400 and b"Not sent" in response.content
    assert _in(alice, Folder.SpecialUse.SENT) == []


def test_too_big_attachment_is_refused_with_the_limit_stated(alice_client: Client, bob: Account, settings: object) -> None:
    settings.MAX_MESSAGE_SIZE = 200 * 1024  # type: ignore[attr-defined]
    big = SimpleUploadedFile("big.bin", b"x" * 300 * 1024, content_type="application/octet-stream")
    response = alice_client.post("/compose/", {"to": "bob@b.test", "subject": "kept", "body": "b", "attachments": [big]})
    page = response.content.decode()
    assert response.status_code == 400 and "the limit is" in page and 'value="kept"' in page
    assert not Message.objects.filter(account=bob).exists()


def test_attachments_are_sent(alice_client: Client, bob: Account) -> None:
    upload = SimpleUploadedFile("notes.txt", b"hello attachment", content_type="text/plain")
    alice_client.post("/compose/", {"to": "bob@b.test", "subject": "files", "body": "see file", "attachments": [upload]})
    [received] = _in(bob, Folder.SpecialUse.INBOX)
    parts = list(_parsed(received).iter_attachments())
    assert [(p.get_filename(), p.get_content()) for p in parts] == [("notes.txt", "hello attachment")]


def test_reply_quotes_and_threads(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    original = deliver(subject="Plans", body="Shall we meet?\r\n", message_id="orig-1@example.org")
    page = alice_client.get(f"/compose/?reply={original.pk}").content.decode()
    assert 'value="Re: Plans"' in page and "&gt; Shall we meet?" in page and "carol@example.org" in page
    alice_client.post("/compose/", {"to": "carol@example.org", "subject": "Re: Plans", "body": "Yes.",
                                    "in_reply_to": "orig-1@example.org", "references": "<orig-1@example.org>"})
    [sent] = _in(alice, Folder.SpecialUse.SENT)
    parsed = _parsed(sent)
    assert parsed["In-Reply-To"] == "<orig-1@example.org>" and parsed["References"] == "<orig-1@example.org>"
    original.refresh_from_db()
    assert original.answered
    assert sent.thread_id == original.thread_id


def test_reply_all_copies_the_other_recipients_but_not_me(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    original = deliver(extra_headers="Cc: Dan <dan@x.example>, alice@a.test\r\n")
    page = alice_client.get(f"/compose/?reply={original.pk}&all=1").content.decode()
    assert "dan@x.example" in page
    assert page.count("alice@a.test") <= 2  # the header's own address, not a recipient field


def test_forward_prefixes_the_subject_and_includes_the_text(alice_client: Client, deliver: Deliver) -> None:
    original = deliver(subject="Report", body="Figures attached.\r\n")
    page = alice_client.get(f"/compose/?forward={original.pk}").content.decode()
    assert 'value="Fwd: Report"' in page and "Forwarded message" in page and "Figures attached." in page


def test_reply_to_another_accounts_message_is_404(mallory_client: Client, alice: Account, deliver: Deliver) -> None:
    original = deliver()
    assert mallory_client.get(f"/compose/?reply={original.pk}").status_code == 404
    assert mallory_client.get(f"/compose/?draft={original.pk}").status_code == 404


def test_autosave_replaces_the_previous_draft_and_is_resumable(alice_client: Client, alice: Account) -> None:
    first = alice_client.post("/compose/draft/", {"to": "bob@b.test", "subject": "Draft 1", "body": "one"}).json()
    second = alice_client.post("/compose/draft/", {"to": "bob@b.test", "subject": "Draft 2", "body": "one two",
                                                   "draft": first["draft"]}).json()
    drafts = _in(alice, Folder.SpecialUse.DRAFTS)
    assert [d.pk for d in drafts] == [second["draft"]]
    assert drafts[0].draft and drafts[0].subject == "Draft 2"
    page = alice_client.get(f"/compose/?draft={second['draft']}").content.decode()
    assert 'value="Draft 2"' in page
    assert "one two</textarea>" in page
    assert 'value="bob@b.test"' in page


def test_autosave_keeps_an_address_that_does_not_parse_yet(alice_client: Client, alice: Account) -> None:
    saved = alice_client.post("/compose/draft/", {"to": "bob@", "subject": "s", "body": "b"}).json()
    page = alice_client.get(f"/compose/?draft={saved['draft']}").content.decode()
    assert "bob@" in page


def test_sending_a_draft_removes_it(alice_client: Client, alice: Account, bob: Account) -> None:
    saved = alice_client.post("/compose/draft/", {"to": "bob@b.test", "subject": "s", "body": "b"}).json()
    alice_client.post("/compose/", {"to": "bob@b.test", "subject": "s", "body": "b", "draft": saved["draft"]})
    assert _in(alice, Folder.SpecialUse.DRAFTS) == []
    assert len(_in(bob, Folder.SpecialUse.INBOX)) == 1


def test_another_accounts_draft_is_never_replaced(alice_client: Client, mallory_client: Client, alice: Account) -> None:
    saved = alice_client.post("/compose/draft/", {"to": "bob@b.test", "subject": "mine", "body": "b"}).json()
    mallory_client.post("/compose/draft/", {"subject": "x", "draft": saved["draft"]})
    assert [d.pk for d in _in(alice, Folder.SpecialUse.DRAFTS)] == [saved["draft"]]


def test_send_via_htmx_redirects_with_hx_redirect(alice_client: Client, bob: Account) -> None:
    response = alice_client.post("/compose/", {"to": "bob@b.test", "subject": "s", "body": "b"},
                                 headers={"HX-Request": "true"})
    assert response.status_code == 204 and response["HX-Redirect"].startswith("/f/")


def test_compose_needs_csrf(alice: Account) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/compose/", {"to": "bob@b.test"}).status_code == 403
    assert client.post("/compose/draft/", {"to": "bob@b.test"}).status_code == 403


def test_rich_text_is_sent_as_sanitised_html_with_a_text_alternative(alice_client: Client, bob: Account) -> None:
    alice_client.post("/compose/", {"to": "bob@b.test", "subject": "Rich", "body": "Hello bold",
                                    "html": '<div>Hello <b>bold</b><img src=x onerror="alert(1)"><script>x</script></div>'})
    [received] = _in(bob, Folder.SpecialUse.INBOX)
    parsed = _parsed(received)
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    text = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "<b>bold</b>" in html and "onerror" not in html and "<script" not in html and "<img" not in html
    assert text.strip() == "Hello bold"


def test_a_hostile_message_resumed_as_a_draft_cannot_script_the_compose_page(alice_client: Client, alice: Account) -> None:
    from mailcore import store

    raw = (b"From: m@evil.example\r\nTo: alice@a.test\r\nSubject: trap\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>hi<img src=x onerror=alert(1)><script>alert(2)</script></p>\r\n")
    appended = store.message_append(account=alice, folder=folder_of(alice, Folder.SpecialUse.DRAFTS), raw=raw)
    page = alice_client.get(f"/compose/?draft={appended.message_id}").content.decode()
    editor = page.split('id="rich-editor"', 1)[1].split("</div>", 1)[0]
    assert "onerror" not in editor and "<script" not in editor and "<img" not in editor


def test_received_mail_is_not_resumable_as_a_draft(alice_client: Client, alice: Account, deliver: Deliver) -> None:
    raw = (b"From: mallory@evil.example\r\nTo: alice@a.test\r\nSubject: trap\r\n"
           b"X-Draft-Bcc: mallory@evil.example\r\nX-Draft-Quote: 1 forward\r\n\r\nhello\r\n")
    received = deliver(raw=raw)
    response = alice_client.get(f"/compose/?draft={received.pk}")
    assert response.status_code == 404
    assert "mallory@evil.example" not in response.content.decode()
    # A draft is resumable whether it is flagged \Draft or merely stands in Drafts.
    saved = alice_client.post("/compose/draft/", {"to": "bob@b.test", "subject": "mine", "body": "b"}).json()
    assert alice_client.get(f"/compose/?draft={saved['draft']}").status_code == 200


def _expunge(message: Message) -> None:
    """Delete for good, as another device would (IMAP EXPUNGE)."""
    from mailcore import store

    for entry in FolderEntry.objects.filter(message=message).select_related("folder"):
        store.folder_expunge(account=entry.folder.account, folder=entry.folder, uids=[entry.uid], only_deleted=False)
    assert not Message.objects.filter(pk=message.pk).exists()


@pytest.mark.parametrize(("query", "said"), [
    ("reply={}", "The message you wanted to reply to no longer exists: it was deleted, perhaps from another device."),
    ("reply={}&all=1", "The message you wanted to reply to no longer exists"),
    ("forward={}", "The message you wanted to forward no longer exists"),
])
def test_reply_or_forward_of_a_message_deleted_meanwhile_says_so_over_an_empty_form(
        alice_client: Client, deliver: Deliver, query: str, said: str) -> None:
    original = deliver(subject="Gone soon", body="Vanishing text\r\n")
    _expunge(original)
    response = alice_client.get("/compose/?" + query.format(original.pk))
    page = response.content.decode()
    assert response.status_code == 404
    assert said in page and 'role="alert"' in page
    assert ">Send</button>" in page and 'name="to"' in page  # a new message can still be written
    assert "Vanishing text" not in page and "Gone soon" not in page


def test_a_draft_deleted_meanwhile_says_so(alice_client: Client, alice: Account) -> None:
    saved = alice_client.post("/compose/draft/", {"to": "bob@b.test", "subject": "Half", "body": "b"}).json()
    _expunge(Message.objects.get(pk=saved["draft"]))
    response = alice_client.get(f"/compose/?draft={saved['draft']}")
    assert response.status_code == 404
    assert "That draft no longer exists: it was sent or deleted" in response.content.decode()


def test_a_plain_reply_whose_original_was_deleted_is_sent_threaded_and_says_it(
        alice_client: Client, alice: Account, bob: Account, deliver: Deliver) -> None:
    original = deliver(subject="Plans", body="Shall we meet?\r\n", message_id="orig-2@example.org")
    page = alice_client.get(f"/compose/?reply={original.pk}").content.decode()
    assert "&gt; Shall we meet?" in page  # the quote is in the text itself: nothing to lose
    _expunge(original)
    response = alice_client.post("/compose/", {
        "to": "bob@b.test", "subject": "Re: Plans", "body": "Yes.\n\n> Shall we meet?",
        "in_reply_to": "orig-2@example.org", "references": "<orig-2@example.org>"}, follow=True)
    assert response.status_code == 200
    assert ("Message sent. The message it answers is no longer in your mailbox, so it was not marked as "
            "answered.") in response.content.decode()
    parsed = _parsed(Message.objects.get(account=bob))
    assert parsed["In-Reply-To"] == "<orig-2@example.org>" and parsed["References"] == "<orig-2@example.org>"
    assert "> Shall we meet?" in parsed.get_content()
