"""Forms of the web UI. Labels are the accessible names the issue fixes ("To", "Message", ...)."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from .outgoing import AddressListError, parse_address_field
from .reading import compose_html_clean

PAGE_SIZES = [(n, str(n)) for n in (10, 25, 50, 100, 200)]


class LoginForm(forms.Form):
    address = forms.CharField(label="Email address", max_length=320,
                              widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True,
                                                            "inputmode": "email"}))
    password = forms.CharField(label="Password", strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        if not data:
            return []
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


def attachment_limit() -> int:
    """Room for attachments in a message of at most MAX_MESSAGE_SIZE: base64 grows data by 4/3."""
    return int(settings.MAX_MESSAGE_SIZE) * 3 // 4 - 64 * 1024


class ComposeForm(forms.Form):
    to = forms.CharField(label="To", required=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    cc = forms.CharField(label="Cc", required=False)
    bcc = forms.CharField(label="Bcc", required=False)
    subject = forms.CharField(label="Subject", required=False, max_length=998)
    body = forms.CharField(label="Message", required=False, strip=False,
                           widget=forms.Textarea(attrs={"rows": 16}))
    attachments = MultipleFileField(label="Attach files", required=False)
    keep = forms.CharField(required=False, widget=forms.HiddenInput)  # parts of the draft to carry over
    draft = forms.IntegerField(required=False, widget=forms.HiddenInput)
    in_reply_to = forms.CharField(required=False, widget=forms.HiddenInput)
    # Rich text: the editor's HTML (sanitised again on the server); the body field then holds
    # its plain-text rendering, sent as the text/plain alternative.
    html = forms.CharField(required=False, widget=forms.HiddenInput, max_length=2_000_000)
    references = forms.CharField(required=False, widget=forms.HiddenInput)
    keep_from = forms.IntegerField(required=False, widget=forms.HiddenInput)
    # Rich-text replies and forwards: the original quoted by reference (see views.compose.quote_of).
    quote = forms.IntegerField(required=False, widget=forms.HiddenInput)
    quote_mode = forms.CharField(required=False, widget=forms.HiddenInput, max_length=10)

    def __init__(self, *args: Any, sending: bool = True, kept_size: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sending = sending
        self.kept_size = kept_size
        self.raw_fields: dict[str, str] = {}

    def _addresses(self, name: str) -> list[tuple[str, str]]:
        try:
            return parse_address_field(self.cleaned_data.get(name) or "")
        except AddressListError as exc:
            if self.sending:
                raise forms.ValidationError(str(exc)) from None
            self.raw_fields[name.capitalize()] = self.cleaned_data.get(name) or ""
            return []

    def clean_to(self) -> list[tuple[str, str]]:
        return self._addresses("to")

    def clean_cc(self) -> list[tuple[str, str]]:
        return self._addresses("cc")

    def clean_bcc(self) -> list[tuple[str, str]]:
        return self._addresses("bcc")

    def clean_attachments(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data.get("attachments") or []
        total = sum(f.size or 0 for f in files) + self.kept_size
        if total > attachment_limit():
            raise forms.ValidationError(
                f"The attachments come to {filesizeformat(total)}; the limit is {filesizeformat(attachment_limit())}."
            )
        return files

    def clean_html(self) -> str:
        return compose_html_clean(self.cleaned_data.get("html") or "")

    def clean_keep(self) -> list[str]:
        return [p for p in (self.cleaned_data.get("keep") or "").split(",") if p.strip()]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.sending and not self.errors:
            count = len(data.get("to") or []) + len(data.get("cc") or []) + len(data.get("bcc") or [])
            if count == 0:
                self.add_error("to", "Add at least one recipient.")
            elif count > settings.MAX_RECIPIENTS:
                self.add_error("to", f"At most {settings.MAX_RECIPIENTS} recipients per message.")
        return data


class SettingsForm(forms.Form):
    display_name = forms.CharField(label="Display name", max_length=200, required=False)
    signature = forms.CharField(label="Signature", required=False, max_length=4000,
                                widget=forms.Textarea(attrs={"rows": 4}))
    page_size = forms.TypedChoiceField(label="Messages per page", choices=PAGE_SIZES, coerce=int)
    conversation_view = forms.BooleanField(label="Conversation view", required=False)
    time_zone = forms.ChoiceField(label="Time zone")
    keyboard_shortcuts = forms.BooleanField(label="Keyboard shortcuts (press ? to list them)", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone_field = self.fields["time_zone"]
        assert isinstance(zone_field, forms.ChoiceField)
        zone_field.choices = [(z, z) for z in sorted(zoneinfo.available_timezones())]


class PasswordChangeForm(forms.Form):
    current = forms.CharField(label="Current password", strip=False, widget=forms.PasswordInput)
    new = forms.CharField(label="New password", strip=False, widget=forms.PasswordInput, min_length=8)
    again = forms.CharField(label="New password again", strip=False, widget=forms.PasswordInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new") and data.get("again") and data["new"] != data["again"]:
            self.add_error("again", "The two passwords differ.")
        return data


class FolderCreateForm(forms.Form):
    name = forms.CharField(label="New folder", max_length=200)
    parent = forms.IntegerField(label="Inside", required=False)


class FolderRenameForm(forms.Form):
    name = forms.CharField(label="New name", max_length=900)
