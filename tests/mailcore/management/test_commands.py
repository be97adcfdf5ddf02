from __future__ import annotations

import mailbox
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mailcore import store
from mailcore.models import Account, Domain, Folder, FolderEntry, Message, Tenant
from tests.conftest import PASSWORD, make_message


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_tenant_domain_account_and_password_commands():
    assert "created tenant Acme" in run("createtenant", "Acme")
    assert "created domain" in run("createdomain", "Acme.Example", "--tenant", "acme")
    assert Domain.objects.get().name == "acme.example"
    assert "created account" in run("createaccount", "Carol@ACME.example", "--password", PASSWORD, "--quota", "500M")
    carol = Account.objects.get(address="carol@acme.example")
    assert carol.quota_bytes == 500 * 1024**2 and carol.check_password(PASSWORD)
    assert Folder.objects.filter(account=carol).count() == 6
    run("setpassword", "CAROL@acme.example", "--password", "another good passphrase")
    carol.refresh_from_db()
    assert carol.check_password("another good passphrase")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("createtenant", "  "), "needs a name"),
        (("createdomain", "x.test", "--tenant", "nobody"), "no tenant named"),
        (("createdomain", "not a domain", "--tenant", "T"), "not allowed in a domain"),
        (("createdomain", "--tenant", "T", "--", "bad-.test"), "not a valid domain"),
        (("createdomain", "dot.test.", "--tenant", "T"), "ends with a dot"),
        (("createaccount", "someone@unknown.test", "--password", PASSWORD), "not served here"),
        (("createaccount", "no-at-sign", "--password", PASSWORD), "name@domain"),
        (("createaccount", "weak@t.test", "--password", "123"), "too short"),
        (("createaccount", "q@t.test", "--password", PASSWORD, "--quota", "lots"), "not a size"),
        (("createaccount", "nopw@t.test"), "no terminal"),
        (("setpassword", "ghost@t.test", "--password", PASSWORD), "no account"),
        (("importmail", "ghost@t.test", "/nonexistent"), "no mailbox"),
    ],
)
def test_commands_refuse_bad_input_with_a_sentence(args, message):
    tenant = Tenant.objects.create(name="T")
    Domain.objects.create(tenant=tenant, name="t.test")
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_duplicates_are_refused(alice):
    with pytest.raises(CommandError, match="already exists"):
        run("createaccount", "alice@a.test", "--password", PASSWORD)
    with pytest.raises(CommandError, match="already served"):
        run("createdomain", "A.TEST", "--tenant", "Tenant A")
    with pytest.raises(CommandError, match="already exists"):
        run("createtenant", "tenant a")


def test_commands_exit_non_zero_from_the_shell(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "createdomain", "bad domain", "--tenant", "none"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[3],
    )
    assert result.returncode != 0
    assert "CommandError" in result.stderr or "Error" in result.stderr


def _write_mbox(path: Path, count: int) -> None:
    box = mailbox.mbox(str(path))
    box.lock()
    try:
        for i in range(count):
            msg = mailbox.mboxMessage(make_message(subject=f"Imported {i}", body=f"Body {i}\r\nFrom the past\r\n"))
            msg.set_from("sender@example.org", (2024, 5, 6, 7, 8, 9, 0, 0, 0))
            if i % 2 == 0:
                msg.set_flags("RO")
            if i % 5 == 0:
                msg.add_flag("F")
            box.add(msg)
        box.flush()
    finally:
        box.unlock()
        box.close()


def test_importmail_of_a_thousand_message_mbox(alice, tmp_path):
    source = tmp_path / "archive.mbox"
    _write_mbox(source, 1000)
    out = run("importmail", "alice@a.test", str(source), "--folder", "Imported/Old")
    assert "imported 1000 messages" in out
    folder = Folder.objects.get(account=alice, name="Imported/Old")
    assert folder.total_count == 1000 and folder.uid_next == 1001
    assert folder.unseen_count == 500
    messages = Message.objects.filter(account=alice)
    assert messages.filter(flagged=True).count() == 200
    first = messages.get(subject="Imported 0")
    assert first.received_at.year == 2024 and first.received_at.month == 5
    raw = bytes(first.blob.data)
    assert b"Status:" not in raw and b"X-Status:" not in raw and b"Body 0" in raw


def test_importmail_of_a_maildir_with_subfolders_and_flags(alice, tmp_path):
    root = tmp_path / "Maildir"
    box = mailbox.Maildir(str(root), create=True)
    plain = mailbox.MaildirMessage(make_message(subject="new one"))
    box.add(plain)
    seen = mailbox.MaildirMessage(make_message(subject="seen and answered"))
    seen.set_subdir("cur")
    seen.set_flags("RS")
    box.add(seen)
    sent = box.add_folder("Sent Items")
    sent_msg = mailbox.MaildirMessage(make_message(subject="I wrote this"))
    sent_msg.set_subdir("cur")
    sent_msg.set_flags("S")
    sent.add(sent_msg)
    nested = box.add_folder("Work.Projects")
    nested.add(mailbox.MaildirMessage(make_message(subject="deep")))
    out = run("importmail", "alice@a.test", str(root))
    assert "imported 4 messages" in out
    inbox = Folder.objects.get(account=alice, name="INBOX")
    assert FolderEntry.objects.filter(folder=inbox).count() == 2
    assert Message.objects.get(account=alice, subject="seen and answered").answered
    assert Message.objects.get(entries__folder__name="Sent").subject == "I wrote this"
    assert Message.objects.get(entries__folder__name="Work/Projects").subject == "deep"


def test_importmail_refuses_a_file_that_is_not_mail(alice, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("just some notes\n")
    with pytest.raises(CommandError, match="neither an mbox"):
        run("importmail", "alice@a.test", str(junk))


def test_importmail_into_a_placeholder_path_revives_it(alice, tmp_path):
    store.folder_create(account=alice, name="Archive2/Child")
    store.folder_delete(account=alice, folder=Folder.objects.get(account=alice, name="Archive2"))
    source = tmp_path / "one.mbox"
    box = mailbox.mbox(str(source))
    box.add(mailbox.mboxMessage(make_message(subject="old")))
    box.flush()
    box.close()
    call_command("importmail", "alice@a.test", str(source), "--folder", "Archive2")
    folder = Folder.objects.get(account=alice, name="Archive2")
    assert not folder.noselect and folder.total_count == 1
