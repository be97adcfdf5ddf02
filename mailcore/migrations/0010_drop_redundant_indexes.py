"""Drop indexes that cost every delivery a btree insert and serve no query.

- The single-column foreign-key indexes on Folder.account, Message.account, FolderEntry.folder
  and FolderChange.folder: each column leads a composite index already (folder_unique_name,
  message_account_*, entry_unique_uid, change_folder_modseq), which serves the same lookups and
  the cascades.
- FolderEntry.message's foreign-key index: entry_message is the same index.
- The varchar_pattern_ops copy of Blob.sha256 that Django adds to a unique CharField: no LIKE
  runs on a digest. The unique index stays, renamed to the constraint that now declares it.

The database side is plain DROP INDEX / RENAME: letting Django alter the fields would also
drop and re-add each foreign key, re-validating whole tables on a large installation.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = {
    # index name: (table, column)
    "mailcore_folder_account_id_97459f1b": ("mailcore_folder", "account_id"),
    "mailcore_message_account_id_439e69cd": ("mailcore_message", "account_id"),
    "mailcore_folderentry_folder_id_b42d4e4e": ("mailcore_folderentry", "folder_id"),
    "mailcore_folderentry_message_id_893ade25": ("mailcore_folderentry", "message_id"),
    "mailcore_folderchange_folder_id_bf83e63a": ("mailcore_folderchange", "folder_id"),
}

FORWARD = [f'DROP INDEX IF EXISTS "{name}"' for name in DROPPED] + [
    'DROP INDEX IF EXISTS "mailcore_blob_sha256_44e692e4_like"',
    'ALTER TABLE "mailcore_blob" RENAME CONSTRAINT "mailcore_blob_sha256_key" TO "blob_unique_sha256"',
]
BACKWARD = [
    f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")'
    for name, (table, column) in DROPPED.items()
] + [
    'CREATE INDEX IF NOT EXISTS "mailcore_blob_sha256_44e692e4_like" ON "mailcore_blob" ("sha256" varchar_pattern_ops)',
    'ALTER TABLE "mailcore_blob" RENAME CONSTRAINT "blob_unique_sha256" TO "mailcore_blob_sha256_key"',
]


class Migration(migrations.Migration):
    dependencies = [
        ("mailcore", "0009_lz4_toast_compression"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(";\n".join(FORWARD), ";\n".join(BACKWARD))],
            state_operations=[
                migrations.AlterField(
                    model_name="blob",
                    name="sha256",
                    field=models.CharField(max_length=64),
                ),
                migrations.AlterField(
                    model_name="folder",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="folders",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="folderchange",
                    name="folder",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="changes",
                        to="mailcore.folder",
                    ),
                ),
                migrations.AlterField(
                    model_name="folderentry",
                    name="folder",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="mailcore.folder",
                    ),
                ),
                migrations.AlterField(
                    model_name="folderentry",
                    name="message",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="mailcore.message",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AddConstraint(
                    model_name="blob",
                    constraint=models.UniqueConstraint(fields=("sha256",), name="blob_unique_sha256"),
                ),
            ],
        ),
    ]
