from __future__ import annotations


class StoreError(Exception):
    """A mail-store operation that cannot be carried out, with a sentence saying why."""


class QuotaExceeded(StoreError):
    pass


class FolderError(StoreError):
    pass


class FolderNotFound(FolderError):
    pass


class FolderExists(FolderError):
    pass


class MessageTooLarge(StoreError):
    pass
