"""FolderEntry.thread_id: the message's thread copied onto each standing, as received_at is.

The conversation list shows the newest entry of each thread in a folder. It asked, for every
row it passed, whether the folder holds a newer entry of the same thread: through the message
(message_account_thread) and back to the entries (entry_message), a probe per message of the
thread. With the thread on the entry, entry_folder_thread (folder, thread, newest first)
answers that in one descent.

The copy is kept right by the database, not by each writer's care: entry_message_thread_fk
refers from the entry's (message_id, thread_id) to the message's (id, thread_id) (the unique
index message_id_thread), MATCH FULL so that an entry without the copy is refused, and ON
UPDATE CASCADE so that whatever changes a message's thread (a merge) changes its entries in the
same statement. Not deferrable: a writer that gets it wrong fails at its statement. A message
without a thread (none is stored so today: a lone message is its own thread) becomes its own.

Message.thread_id loses its single-column index: every lookup by thread names the account
(message_account_thread); message_id_thread takes its place in the cost of a delivery.

Cost on a large installation: the backfill is one UPDATE ... FROM, run before the new index
exists; it writes a new version of every entry row (on this project's bench database, 100,000
entries, about 2 s; 100 million entries would take hours and the table's size again in WAL,
and would rather be filled by folder in batches beforehand: the UPDATE then skips rows already
right), followed by an ANALYZE of the entries: until the new column has statistics the
planner guesses a third of the folder for any list of threads and scans whole tables for the
conversation sums (140 ms instead of about 1 ms on the bench mailbox). The foreign key is added
NOT VALID and validated afterwards, but all of it runs in this migration's one transaction, so
the locks it takes on both tables (the unique index build, ADD CONSTRAINT) block writes to the
messages and entries until it commits: at our scale a few seconds. Run it with the roles
stopped (docs/running.md, Upgrading): processes on the older code write entries without the
thread, which the foreign key refuses. On a big installation, split it: the backfill by folder
beforehand, the index built CONCURRENTLY, the VALIDATE in a transaction of its own.
"""

from django.db import migrations, models

FORWARD = """
UPDATE mailcore_message SET thread_id = id WHERE thread_id IS NULL;
UPDATE mailcore_folderentry e SET thread_id = m.thread_id
FROM mailcore_message m
WHERE m.id = e.message_id AND e.thread_id IS DISTINCT FROM m.thread_id;
ALTER TABLE mailcore_folderentry ADD CONSTRAINT entry_message_thread_fk
    FOREIGN KEY (message_id, thread_id) REFERENCES mailcore_message (id, thread_id)
    MATCH FULL ON UPDATE CASCADE ON DELETE NO ACTION NOT VALID;
ALTER TABLE mailcore_folderentry VALIDATE CONSTRAINT entry_message_thread_fk;
ANALYZE mailcore_folderentry
"""
BACKWARD = "ALTER TABLE mailcore_folderentry DROP CONSTRAINT IF EXISTS entry_message_thread_fk"


class Migration(migrations.Migration):
    dependencies = [
        ("mailcore", "0010_drop_redundant_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="folderentry",
            name="thread_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name="message",
            name="thread_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(fields=("id", "thread_id"), name="message_id_thread"),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.AddIndex(
            model_name="folderentry",
            index=models.Index(fields=["folder", "thread_id", "-received_at", "-uid"], name="entry_folder_thread"),
        ),
    ]
