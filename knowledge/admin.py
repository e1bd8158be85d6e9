"""The admin for the knowledge base: switch whole sources on and off, find and edit passages.

Saves and deletes bump the knowledge version through ``knowledge.signals``; the bulk switches
below use ``queryset.update()``, which sends no signal, so they bump it themselves: without the
bump, workers would keep answering from a source a curator has just disabled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from knowledge import versions
from knowledge.models import KnowledgeSource, Passage


def enabled_switches(name: str, bump: Callable[[type[models.Model]], Iterable[str]], disable_note: str = "") -> list:
    """The two bulk actions that switch rows on and off (``enable_<name>``, ``disable_<name>``).

    ``update()`` sends no post_save, so they bump the versions ``bump(model)`` names themselves:
    without that, workers would keep answering from what a curator has just switched off. The
    rules, concepts and knowledge sources all use these."""

    def switch(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        changed = queryset.update(enabled=enabled)
        for version in bump(modeladmin.model):
            versions.bump(version)
        options = modeladmin.model._meta
        noun = options.verbose_name if changed == 1 else options.verbose_name_plural
        modeladmin.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {changed} {noun}.", messages.SUCCESS)

    def enable(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        switch(modeladmin, request, queryset, True)

    def disable(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        switch(modeladmin, request, queryset, False)

    enable.__name__, disable.__name__ = f"enable_{name}", f"disable_{name}"
    return [
        admin.action(description="Enable selected %(verbose_name_plural)s", permissions=["change"])(enable),
        admin.action(description=f"Disable selected %(verbose_name_plural)s{disable_note}", permissions=["change"])(
            disable
        ),
    ]


class KnowledgeAdmin(admin.ModelAdmin):
    # A link typed without a scheme is https (Django 6's default; 5.x still says http and warns).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(KnowledgeSource)
class KnowledgeSourceAdmin(KnowledgeAdmin):
    actions = enabled_switches(
        "sources", lambda model: [versions.KNOWLEDGE], disable_note=" (their passages leave the answers)"
    )
    list_display = ["name", "publisher", "licence", "enabled", "passage_count", "last_reviewed", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "publisher", "url"]
    fields = ["name", "publisher", "url", "licence", "enabled", "last_reviewed", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(passage_count=Count("passages"))

    @admin.display(description="Passages", ordering="passage_count")
    def passage_count(self, source: KnowledgeSource) -> int:
        return source.passage_count


@admin.register(Passage)
class PassageAdmin(KnowledgeAdmin):
    list_display = ["title", "focus", "question_type", "source", "updated_at"]
    list_filter = ["source", "question_type", "source__enabled"]
    list_select_related = ["source"]
    list_per_page = 50
    # A whole MedQuAD import is ~15k rows: counting every filtered page twice is wasted time.
    show_full_result_count = False
    search_fields = ["title", "focus", "synonyms", "text"]
    search_help_text = "Searches titles, focus, synonyms and text."
    fields = [
        "source",
        "external_id",
        "title",
        "focus",
        "synonyms",
        "question_type",
        "text",
        "url",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["created_at", "updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Passage | None = None) -> list[str]:
        # The id is how a re-import finds this passage again: set once, then fixed.
        return [*self.readonly_fields, "external_id"] if obj is not None else self.readonly_fields
