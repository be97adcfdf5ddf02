from __future__ import annotations


class StoreError(Exception):
    """A mail-store operation that cannot be carried out, with a sentence saying why."""


class QuotaExceeded(StoreError):
    pass


class FolderError(StoreError):
    pass


class FolderNotFound(FolderError, LookupError):
    """No such folder, or one that holds no messages (a \\Noselect placeholder)."""


class FolderHasChildren(FolderError):
    """A \\Noselect placeholder cannot be deleted while it has children (RFC 3501 §6.3.4)."""


class FolderExists(FolderError):
    pass


class MessageTooLarge(StoreError):
    pass
