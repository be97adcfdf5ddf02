from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models

from .tenants import Account


class Blob(models.Model):
    """The raw RFC 5322 bytes of a message, verbatim, stored once per distinct content.

    ``refcount`` counts the Message and OutboundMessage rows that use the blob; the store
    deletes the row in the transaction that drops the count to zero.
    """

    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    data = models.BinaryField()
    refcount = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # A constraint rather than unique=True: the same unique index, without the extra
        # varchar_pattern_ops index Django adds for a unique CharField (no LIKE ever runs on it).
        constraints = [models.UniqueConstraint(fields=["sha256"], name="blob_unique_sha256")]

    def __str__(self) -> str:
        return f"blob {self.sha256[:12]} ({self.size} bytes, {self.refcount} refs)"


class Folder(models.Model):
    class SpecialUse(models.TextChoices):
        NONE = "", "None"
        INBOX = "\\Inbox", "Inbox"
        SENT = "\\Sent", "Sent"
        DRAFTS = "\\Drafts", "Drafts"
        TRASH = "\\Trash", "Trash"
        JUNK = "\\Junk", "Junk"
        ARCHIVE = "\\Archive", "Archive"

    DELIMITER = "/"
    INBOX = "INBOX"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="folders", db_index=False)
    # Full hierarchical name with DELIMITER; "INBOX" is always spelt so.
    name = models.CharField(max_length=1000)
    special_use = models.CharField(max_length=16, choices=SpecialUse.choices, blank=True, default="")
    # A name kept only because it has children (IMAP DELETE of a parent, RFC 3501 §6.3.4): it
    # holds no messages, cannot be selected or receive mail, and is listed as \Noselect.
    noselect = models.BooleanField(default=False)
    uidvalidity = models.BigIntegerField()
    uid_next = models.BigIntegerField(default=1)
    highest_modseq = models.BigIntegerField(default=1)
    # Counters kept exact by the store in the writing transaction.
    total_count = models.IntegerField(default=0)
    unseen_count = models.IntegerField(default=0)
    total_size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="folder_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_inbox(self) -> bool:
        return self.name == self.INBOX

    @property
    def is_special(self) -> bool:
        return bool(self.special_use)

    @property
    def leaf_name(self) -> str:
        return self.name.rpartition(self.DELIMITER)[2]

    @property
    def parent_name(self) -> str:
        return self.name.rpartition(self.DELIMITER)[0]

    @property
    def depth(self) -> int:
        return self.name.count(self.DELIMITER)


class Subscription(models.Model):
    """A subscribed mailbox name (IMAP SUBSCRIBE, RFC 3501 §6.3.6): a name, not a folder, so it
    outlives DELETE and may name a mailbox that does not exist."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="subscriptions")
    name = models.CharField(max_length=1000)

    class Meta:
        ordering = ["account", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="subscription_unique_name")]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """One account's copy of a delivered or appended message, with what was parsed once."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="messages", db_index=False)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="messages")
    size = models.BigIntegerField()
    received_at = models.DateTimeField()
    # The zone the INTERNALDATE was given in (APPEND, RFC 3501 §6.3.11), minutes east of UTC,
    # so that FETCH INTERNALDATE returns it as given; 0 for deliveries.
    received_tz = models.SmallIntegerField(default=0)

    # System flags and keywords belong to the message (shared by every folder it stands in).
    seen = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    draft = models.BooleanField(default=False)
    keywords = models.JSONField(default=list)

    # Conversation: the id of the first message of the thread within this account. Copied to
    # each FolderEntry (kept equal by the database, see FolderEntry.thread_id); no index of its
    # own: every lookup names the account too (message_account_thread).
    thread_id = models.BigIntegerField(null=True)

    # Parsed at delivery (mailcore.mime).
    subject = models.TextField(blank=True)
    thread_subject = models.TextField(blank=True)
    from_name = models.TextField(blank=True)
    from_email = models.TextField(blank=True)
    to_text = models.TextField(blank=True)
    cc_text = models.TextField(blank=True)
    addresses = models.JSONField(default=dict)
    date = models.DateTimeField(null=True, blank=True)
    message_id = models.TextField(blank=True)
    in_reply_to = models.JSONField(default=list)
    references = models.JSONField(default=list)
    header_size = models.IntegerField(default=0)
    envelope = models.JSONField(default=list)
    bodystructure = models.JSONField(default=dict)
    attachments = models.JSONField(default=list)
    has_attachments = models.BooleanField(default=False)
    preview = models.TextField(blank=True)
    html_part = models.CharField(max_length=100, blank=True)
    text_part = models.CharField(max_length=100, blank=True)
    search_text = models.TextField(blank=True)
    search_vector = SearchVectorField(null=True)

    class Meta:
        constraints = [
            # What entry_message_thread_fk (FolderEntry.thread_id) refers to.
            models.UniqueConstraint(fields=["id", "thread_id"], name="message_id_thread"),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="message_search_gin"),
            # The backlog of the index job (mailcore/store/index.py).
            models.Index(fields=["id"], name="message_unindexed", condition=models.Q(search_vector__isnull=True)),
            models.Index(fields=["account", "thread_id"], name="message_account_thread"),
            models.Index(fields=["account", "message_id"], name="message_account_msgid"),
            models.Index(fields=["account", "thread_subject"], name="message_account_tsubject"),
            # Looked up on every delivery (threads): no pending list, which each lookup would scan.
            GinIndex(fields=["references"], name="message_references_gin", opclasses=["jsonb_path_ops"],
                     fastupdate=False),
            GinIndex(fields=["in_reply_to"], name="message_inreplyto_gin", opclasses=["jsonb_path_ops"],
                     fastupdate=False),
        ]

    def __str__(self) -> str:
        return f"message {self.pk}: {self.subject[:60]}"

    SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
    _FLAG_FIELDS = {"\\seen": "seen", "\\answered": "answered", "\\flagged": "flagged",
                    "\\deleted": "deleted", "\\draft": "draft"}

    @classmethod
    def flag_field(cls, flag: str) -> str | None:
        return cls._FLAG_FIELDS.get(flag.lower())

    @property
    def flag_list(self) -> list[str]:
        flags = [name for name, on in zip(self.SYSTEM_FLAGS,
                 (self.seen, self.answered, self.flagged, self.deleted, self.draft), strict=True) if on]
        return flags + list(self.keywords)


class FolderEntry(models.Model):
    """A message standing in a folder, with its own IMAP UID and MODSEQ there."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="entries", db_index=False)
    uid = models.BigIntegerField()
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="entries", db_index=False)
    modseq = models.BigIntegerField()
    # \Recent (IMAP4rev1): set for the first session to see the entry.
    recent = models.BooleanField(default=True)
    # Copied from the message so that list pages sort and page by an index on one table.
    received_at = models.DateTimeField()
    # Copied from the message too: "a newer entry of this thread in this folder", which the
    # conversation list asks of every row it passes, is one probe of entry_folder_thread. The
    # foreign key entry_message_thread_fk, (message, thread_id) to the message's (id, thread_id),
    # MATCH FULL, ON UPDATE CASCADE (migration 0011; Django has no composite foreign keys), makes
    # a missing copy or one that differs from its message's thread impossible, and carries any
    # change of a message's thread (a merge) to its entries in the same statement.
    thread_id = models.BigIntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["folder", "uid"], name="entry_unique_uid")]
        indexes = [
            models.Index(fields=["folder", "modseq"], name="entry_folder_modseq"),
            models.Index(fields=["folder", "-received_at", "-uid"], name="entry_folder_date"),
            models.Index(fields=["folder", "thread_id", "-received_at", "-uid"], name="entry_folder_thread"),
            models.Index(fields=["message"], name="entry_message"),
        ]

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}"


class FolderChange(models.Model):
    """Change log for CONDSTORE/QRESYNC and browser resync: expunges and flag changes."""

    class Kind(models.TextChoices):
        EXPUNGE = "expunge", "Expunge"
        FLAGS = "flags", "Flags"

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="changes", db_index=False)
    modseq = models.BigIntegerField()
    uid = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)

    class Meta:
        indexes = [models.Index(fields=["folder", "modseq"], name="change_folder_modseq")]

    def __str__(self) -> str:
        return f"{self.kind} {self.folder_id}:{self.uid} at {self.modseq}"
