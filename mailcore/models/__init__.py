from .mail import Blob, Folder, FolderChange, FolderEntry, Message, Subscription
from .queue import OutboundMessage, OutboundRecipient
from .tenants import Account, Alias, Domain, Tenant

__all__ = [
    "Account",
    "Alias",
    "Blob",
    "Domain",
    "Folder",
    "FolderChange",
    "FolderEntry",
    "Message",
    "OutboundMessage",
    "OutboundRecipient",
    "Subscription",
    "Tenant",
]
