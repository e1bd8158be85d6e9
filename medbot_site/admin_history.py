"""Before-and-after history for curated rows, kept in the admin's own log, and putting an
earlier version back.

Django's admin log (``LogEntry``) records which fields a change touched, not what they held.
Curators need to see what a rule said before and after each change, and to go back to an
earlier wording, so every change made in the admin also stores the row's editable fields
before and after, in that same log entry's change message, under a key Django's own display
of the message ignores. No second history table and no new dependency: the entries the admin
already writes carry the versions. Entries written before this existed show which fields
changed, as before, and cannot be restored.

Use ``VersionHistoryMixin`` on a ModelAdmin. Bulk actions that bypass the form (``update()``)
call ``log_switched`` so they leave versions too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.text import capfirst
from django.utils.timezone import localtime

VERSION_KEY = "medbot_version"

Snapshot = dict[str, Any]


def _plain(value: Any) -> Any:
    """A value JSON can hold as it is; anything else (a date, a decimal) as text."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def snapshot(obj: models.Model, names: list[str]) -> Snapshot:
    return {name: _plain(obj._meta.get_field(name).value_from_object(obj)) for name in names}


def with_version(message: list[dict[str, Any]], before: Snapshot | None, after: Snapshot, **extra: Any) -> list:
    """Django's change message (a list of {"added"|"changed"|"deleted": ...}) plus the version."""
    return [*message, {VERSION_KEY: {"before": before, "after": after, **extra}}]


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: str  # as shown: text, a number, Yes or No
    after: str


@dataclass
class Version:
    """One log entry as the history page shows it."""

    entry: LogEntry
    before: Snapshot | None = None  # None: an addition, or an entry older than versions
    after: Snapshot | None = None
    restored_from: str = ""  # when this change put back an earlier version: that version's date
    changes: list[FieldChange] = field(default_factory=list)

    @property
    def can_restore(self) -> bool:
        return self.before is not None


def read_version(entry: LogEntry, model: type[models.Model]) -> Version:
    version = Version(entry)
    try:
        parts = json.loads(entry.change_message) if entry.change_message.startswith("[") else []
    except json.JSONDecodeError:
        parts = []
    stored = next((part[VERSION_KEY] for part in parts if isinstance(part, dict) and VERSION_KEY in part), None)
    if not isinstance(stored, dict):
        return version
    version.before, version.after = stored.get("before"), stored.get("after")
    version.restored_from = stored.get("restored_from", "")
    after = version.after or {}
    before = version.before or {}
    for name in after:
        if version.before is not None and before.get(name) == after.get(name):
            continue
        try:
            label = capfirst(model._meta.get_field(name).verbose_name)
        except FieldDoesNotExist:
            label = name
        version.changes.append(FieldChange(label, _shown(before.get(name)), _shown(after.get(name))))
    return version


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


class PlainLinesField(forms.CharField):
    """A textarea's text with the browser's CRLF line endings made plain LF, as the fixtures write
    them: otherwise saving a form unchanged would record every multi-line field as changed."""

    widget = forms.Textarea

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        return text.replace("\r\n", "\n").replace("\r", "\n") if text else text


class VersionHistoryMixin:
    """A ModelAdmin whose history page shows each change's before and after, with a button that
    puts back the version a change replaced (itself a change, logged the same way)."""

    formfield_overrides = {models.TextField: {"form_class": PlainLinesField}}

    object_history_template = "admin/medbot/object_history.html"

    def versioned_fields(self, request: HttpRequest, obj: models.Model | None = None) -> list[str]:
        """The fields a curator edits on the form: what a version holds."""
        readonly = set(self.get_readonly_fields(request, obj))
        names = []
        for name in flatten_fieldsets(self.get_fieldsets(request, obj)):
            try:
                model_field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if name not in readonly and model_field.editable and model_field.concrete:
                names.append(name)
        return names

    def construct_change_message(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        message = super().construct_change_message(request, form, formsets, add)
        names = [name for name in self.versioned_fields(request, form.instance) if name in form.fields]
        # The form's initial values are the row as it was read for this save.
        before = None if add else {name: _plain(form.initial.get(name)) for name in names}
        return with_version(message, before, snapshot(form.instance, names), **getattr(form, "version_extra", {}))

    def log_switched(self, request: HttpRequest, rows: list[models.Model], values: dict[str, Any]) -> None:
        """Log a bulk change made with ``update()`` (no form): each row's before and after."""
        names = self.versioned_fields(request)
        for row in rows:
            before = snapshot(row, names)
            after = {**before, **{name: _plain(value) for name, value in values.items() if name in before}}
            labels = [str(capfirst(row._meta.get_field(name).verbose_name)) for name in values]
            self.log_change(request, row, with_version([{"changed": {"fields": labels}}], before, after))

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        response = super().history_view(request, object_id, extra_context)
        if isinstance(response, TemplateResponse) and "action_list" in (response.context_data or {}):
            obj = response.context_data["object"]
            response.context_data["versions"] = [
                read_version(entry, self.model) for entry in response.context_data["action_list"]
            ]
            response.context_data["can_restore"] = self.has_change_permission(request, obj)
        return response

    def get_urls(self) -> list[URLPattern]:
        options = self.model._meta
        return [
            path(
                "<path:object_id>/history/<int:entry_id>/restore/",
                self.admin_site.admin_view(self.restore_view),
                name=f"{options.app_label}_{options.model_name}_restore",
            ),
            *super().get_urls(),
        ]

    def restore_view(self, request: HttpRequest, object_id: str, entry_id: int) -> HttpResponse:
        """Put back the version that the change ``entry_id`` replaced, through the admin's own
        form (so its checks run and the save reaches the workers like any edit)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        content_type = ContentType.objects.get_for_model(self.model)
        entry = LogEntry.objects.filter(pk=entry_id, content_type=content_type, object_id=str(obj.pk)).first()
        if entry is None:
            raise Http404
        history = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_history", args=[obj.pk])
        version = read_version(entry, self.model)
        if version.before is None:
            self.message_user(request, "That change kept no earlier version to go back to.", messages.ERROR)
            return HttpResponseRedirect(history)

        form_class = self.get_form(request, obj, change=True)
        current = form_class(instance=obj)
        values = {**current.initial, **version.before}
        data = {}
        for name, form_field in current.fields.items():
            value = values.get(name)
            if isinstance(form_field, forms.BooleanField):
                if value:
                    data[name] = "on"
            else:
                data[name] = "" if value is None else value
        form = form_class(data=data, instance=obj)
        when = date_format(localtime(entry.action_time), "DATETIME_FORMAT")
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            self.message_user(request, f"The earlier version cannot be saved as it is ({problems}).", messages.ERROR)
            return HttpResponseRedirect(history)
        form.version_extra = {"restored_from": when}
        with transaction.atomic():
            restored = self.save_form(request, form, change=True)
            self.save_model(request, restored, form, change=True)
            self.log_change(request, restored, self.construct_change_message(request, form, [], add=False))
        self.message_user(request, f"Put back the version from before the change of {when}.", messages.SUCCESS)
        return HttpResponseRedirect(history)
