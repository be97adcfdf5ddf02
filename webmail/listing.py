"""The message list's rows as display strings, built once per row in Python.

A page of 50 rows rendered straight from model instances cost ~1,700 template variable lookups,
~100 ``{% url %}`` reversals and ~100 date formats (about 70 % of the list's server time). Here
each row's URL is a string format of one reversed pattern, its dates are formatted once in the
reader's time zone, and its sender, labels and preview are ready to print. The row markup itself
(``ROW``, one for conversations and messages alike) is a ``str.format`` too: through the template
engine its ~14 variables and ~6 conditions per row still cost about a third of a list request's
Python time. ``_list.html`` prints the joined rows (``render_rows``) inside its table.
No queries: everything comes from the page that ``selectors.folder_page`` fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from html import escape as _escape
from typing import TYPE_CHECKING

from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3, WEEKDAYS_ABBR
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

if TYPE_CHECKING:
    from mailcore.models import FolderEntry, Message

    from .selectors import Conversation

NO_SUBJECT = "(no subject)"
PREVIEW_CHARS = 120
SENDER_CHARS = 40
ELLIPSIS = "…"  # what Truncator appends (untranslated: the interface is English)
_SENTINEL = 987654321987
_DRAFT_MARK = SafeString('<span class="draft">, Draft</span>')


def url_pattern(name: str) -> str:
    """A ``str.format`` pattern of the URL ``name`` with its one integer argument as ``{}``:
    reversed once per page instead of once per row."""
    url = reverse(name, args=[_SENTINEL])
    assert url.count(str(_SENTINEL)) == 1, url
    return url.replace("{", "{{").replace("}", "}}").replace(str(_SENTINEL), "{}")


def truncate(text: str, chars: int) -> str:
    """What ``|truncatechars`` prints. ASCII text (most of it) is cut here: Django's
    ``Truncator`` normalises, skips combining characters and translates its "…" on every call."""
    if text.isascii():
        return text if len(text) <= chars else text[: chars - len(ELLIPSIS)] + ELLIPSIS
    return Truncator(text).chars(chars)


def list_label(local: datetime, today: date) -> str:
    """Gmail-like: the time today, day and month this year, else the full date."""
    if local.date() == today:
        return f"{local:%H:%M}"
    if local.year == today.year:
        return f"{local.day} {local:%b}"
    return f"{local.day} {local:%b} {local.year}"


@dataclass(frozen=True, slots=True)
class Row:
    id: str  # the message shown: data-id (a string: the template would localise a number)
    key: str  # data-key: what the keyboard cursor remembers across refreshes
    value: str  # what the checkbox and the star post as ``ids``
    unread: bool
    flagged: bool
    select_label: str
    sender: SafeString  # the From cell's content, escaped
    href: str
    subject: str
    preview: str
    attachments: bool
    iso: str  # <time datetime>
    title: str  # full date and time, on hover
    date: str  # as the list shows it


# One list row, exactly what the ``{% for %}`` loop of ``_list.html`` used to print (the leading
# newline and the trailing indentation included). Every value is escaped as the template's
# autoescape did (``html.escape`` with quotes) except ``sender``, which is markup already.
ROW = """
  <tr class="{unread}" data-id="{id}" data-key="{key}">
    <td class="sel"><input type="checkbox" name="ids" value="{value}" aria-label="{select_label}"></td>
    <td class="star"><button type="button" class="star-toggle{on}" aria-pressed="{pressed}"
        aria-label="Starred" title="{star_title}"
        hx-post="{action_url}" hx-target="#list" hx-swap="innerHTML"
        hx-vals='{{"action": "{star_action}", "ids": "{value}"}}'>{star}</button></td>
    <td class="from">{sender}</td>
    <td class="subject">
      <a href="{href}"><span class="subj">{subject}</span></a>
      <span class="preview"> – {preview}</span>
    </td>
    <td class="att">{attachments}</td>
    <td class="date"><time datetime="{iso}" title="{title}">{date}</time></td>
  </tr>
  """
_ATTACHMENT = '<span title="Has attachments" aria-label="Has attachments">📎</span>'
_STARRED = {"on": " on", "pressed": "true", "star_title": "Starred", "star_action": "unstar", "star": "★"}
_UNSTARRED = {"on": "", "pressed": "false", "star_title": "Not starred", "star_action": "star", "star": "☆"}


def render_rows(rows: list[Row], action_url: str) -> SafeString:
    """The ``<tr>`` of every row, for ``{{ rows_html }}`` in ``_list.html``."""
    action = _escape(action_url)
    fmt = ROW.format
    return SafeString("".join(fmt(
        unread="unread" if r.unread else "",
        id=_escape(r.id), key=_escape(r.key), value=_escape(r.value),
        select_label=_escape(r.select_label), action_url=action,
        sender=r.sender, href=_escape(r.href), subject=_escape(r.subject), preview=_escape(r.preview),
        attachments=_ATTACHMENT if r.attachments else "",
        iso=_escape(r.iso), title=_escape(r.title), date=_escape(r.date),
        **(_STARRED if r.flagged else _UNSTARRED),
    ) for r in rows))


class RowBuilder:
    """Everything a page's rows share, worked out once: URL patterns, the folder, the time
    zone, today, and the (translated) day and month names."""

    def __init__(self, folder_id: int, *, drafts: bool, tz: tzinfo | None = None) -> None:
        self.tz = tz or timezone.get_current_timezone()
        self.today = timezone.now().astimezone(self.tz).date()
        self.drafts = drafts
        self.folder_id = folder_id
        self._message_url = url_pattern("message") + f"?folder={folder_id}"
        self._draft_url = reverse("compose") + "?draft={}"
        self._days = [str(WEEKDAYS_ABBR[i]) for i in range(7)]
        self._months = [""] + [str(MONTHS_3[i]).title() for i in range(1, 13)]

    def _dates(self, when: datetime) -> tuple[str, str, str]:
        local = when.astimezone(self.tz)
        title = f"{self._days[local.weekday()]} {local.day} {self._months[local.month]} {local.year}, {local:%H:%M}"
        return local.isoformat(), title, list_label(local, self.today)

    def _common(self, message: Message, received_at: datetime) -> tuple[str, str, str, str, str, str]:
        subject = message.subject or NO_SUBJECT
        iso, title, label = self._dates(received_at)
        preview = truncate(message.preview, PREVIEW_CHARS)
        return subject, preview, iso, title, label, self._message_url.format(message.pk)

    def conversation(self, row: Conversation) -> Row:
        message = row.entry.message
        subject, preview, iso, title, label, href = self._common(message, row.entry.received_at)
        # What format_html printed, without its lazy-string and SafeString wrappers per call.
        sender = '<span class="people">' + _escape(", ".join(row.names)) + "</span>"
        if row.has_draft:
            sender += _DRAFT_MARK
        if row.count > 1:
            sender += f' <span class="count" aria-label="{row.count} messages">{row.count}</span>'
        return Row(
            id=str(message.pk),
            key=row.key,
            value=row.key,
            unread=row.unread,
            flagged=row.flagged,
            select_label=f"Select conversation with {', '.join(row.names)}: {subject}",
            sender=SafeString(sender),
            href=href,
            subject=subject,
            preview=preview,
            attachments=row.attachments,
            iso=iso,
            title=title,
            date=label,
        )

    def message(self, entry: FolderEntry) -> Row:
        message = entry.message
        subject, preview, iso, title, label, href = self._common(message, entry.received_at)
        who = message.from_name or message.from_email
        if self.drafts:
            sender = format_html(
                '<span class="draft">Draft</span> {}', truncate(message.to_text, SENDER_CHARS)
            )
            href = self._draft_url.format(message.pk)
        else:
            sender = SafeString(escape(truncate(who, SENDER_CHARS)))
        return Row(
            id=str(message.pk),
            key=f"m{message.pk}",
            value=str(message.pk),
            unread=not message.seen,
            flagged=message.flagged,
            select_label=f"Select message from {who}: {subject}",  # noqa: S608 - a label, not SQL
            sender=sender,
            href=href,
            subject=subject,
            preview=preview,
            attachments=message.has_attachments,
            iso=iso,
            title=title,
            date=label,
        )
