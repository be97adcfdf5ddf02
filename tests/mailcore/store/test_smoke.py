from mailcore import store
from mailcore.models import Folder, FolderEntry, Message
from tests.conftest import make_message


def test_deliver_then_flags_copy_move_expunge(alice, bob):
    result = store.message_deliver(raw=make_message(), recipients=["alice@a.test", "bob@b.test", "nobody@a.test", "x@remote.org"])
    assert [r.status.value for r in result.recipients] == ["delivered", "delivered", "unknown", "not_local"]
    inbox = Folder.objects.get(account=alice, name="INBOX")
    assert inbox.total_count == 1 and inbox.unseen_count == 1 and inbox.uid_next == 2
    r = store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Seen", "$Label1"])
    assert r.changed == [1]
    inbox.refresh_from_db()
    assert inbox.unseen_count == 0
    archive = Folder.objects.get(account=alice, name="Archive")
    pairs = store.message_copy(account=alice, source=inbox, uids=[1], target=archive)
    assert pairs == [(1, 1)]
    pairs = store.message_move(account=alice, source=archive, uids=[1], target=Folder.objects.get(account=alice, name="Trash"))
    assert pairs == [(1, 1)]
    store.flags_store(account=alice, folder=inbox, uids=[1], mode="add", flags=["\\Deleted"])
    assert store.folder_expunge(account=alice, folder=inbox) == [1]
    assert Message.objects.filter(account=alice).count() == 1
    assert FolderEntry.objects.filter(folder__account=alice).count() == 1
