"""The mail store: the only code that writes mail rows (DESIGN.md, "one door for every write").

Every service here is one transaction, allocates UIDs and MODSEQs as the design says, keeps the
quota and folder counters exact in the same transaction, and publishes an event after commit.
"""

from .accounts import (
    AccountError,
    account_create,
    account_send_as,
    account_set_password,
    alias_create,
    domain_create,
    tenant_create,
)
from .deliver import (
    DeliveryResult,
    DeliveryStatus,
    RecipientKind,
    RecipientResult,
    Resolution,
    message_deliver,
    recipient_resolve,
)
from .errors import (
    FolderError,
    FolderExists,
    FolderHasChildren,
    FolderNotFound,
    MessageTooLarge,
    QuotaExceeded,
    StoreError,
)
from .folders import (
    SPECIAL_FOLDERS,
    folder_create,
    folder_delete,
    folder_name_normalize,
    folder_rename,
    folder_set_special_use,
    folder_subscribe,
    folders_create_defaults,
)
from .messages import (
    Appended,
    FlagsResult,
    flags_store,
    folder_expunge,
    label_add,
    message_append,
    message_copy,
    message_move,
    messages_release,
    recent_clear,
)

__all__ = [
    "SPECIAL_FOLDERS",
    "AccountError",
    "Appended",
    "DeliveryResult",
    "DeliveryStatus",
    "FlagsResult",
    "FolderError",
    "FolderExists",
    "FolderHasChildren",
    "FolderNotFound",
    "MessageTooLarge",
    "QuotaExceeded",
    "RecipientKind",
    "RecipientResult",
    "Resolution",
    "StoreError",
    "account_create",
    "account_send_as",
    "account_set_password",
    "alias_create",
    "domain_create",
    "flags_store",
    "folder_create",
    "folder_delete",
    "folder_expunge",
    "folder_name_normalize",
    "folder_rename",
    "folder_set_special_use",
    "folder_subscribe",
    "folders_create_defaults",
    "label_add",
    "message_append",
    "message_copy",
    "message_deliver",
    "message_move",
    "messages_release",
    "recent_clear",
    "recipient_resolve",
    "tenant_create",
]

from .recent import recent_claim  # noqa: E402

__all__ += ["recent_claim"]
from .preferences import account_preferences_set  # noqa: E402

__all__ += ["account_preferences_set"]
