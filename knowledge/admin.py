"""The admin for the knowledge base: switch whole sources on and off, find and edit passages.

Saves and deletes bump the knowledge version through ``knowledge.signals``; the bulk switches
below use ``queryset.update()``, which sends no signal, so they bump it themselves: without the
bump, workers would keep answering from a source a curator has just disabled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.db import models
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.http import HttpRequest
from django.utils.text import smart_split, unescape_string_literal

from knowledge import versions
from knowledge.models import Alias, KnowledgeSource, Passage


def enabled_switches(name: str, bump: Callable[[type[models.Model]], Iterable[str]], disable_note: str = "") -> list:
    """The two bulk actions that switch rows on and off (``enable_<name>``, ``disable_<name>``).

    ``update()`` sends no post_save, so they bump the versions ``bump(model)`` names themselves:
    without that, workers would keep answering from what a curator has just switched off. The
    rules, concepts and knowledge sources all use these."""

    def switch(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        # An admin that keeps versions (``medbot_site.admin_history``) logs each switched row.
        log = getattr(modeladmin, "log_switched", None)
        switched = list(queryset.exclude(enabled=enabled)) if log is not None else []
        changed = queryset.update(enabled=enabled)
        if switched:
            log(request, switched, {"enabled": enabled})
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


def search_terms(search_term: str) -> list[str]:
    """The words of an admin search as Django's own search splits them ("quoted phrases" whole)."""
    terms = []
    for bit in smart_split(search_term):
        if bit[:1] in "\"'" and bit[-1:] == bit[:1] and len(bit) > 1:
            bit = unescape_string_literal(bit)
        if bit.strip():
            terms.append(bit.strip())
    return terms


def search_rank(search_term: str, weights: dict[str, int]) -> Case | Value:
    """How well a row matches a search, as a number to sort by, best first.

    Each field has a weight (a title counts more than a long text). A field holding the whole
    search as typed ("blood pressure", words together) scores three times its weight, and each
    word found in it once more: so "High blood pressure", with the phrase in its title, comes
    before an entry that only mentions blood and pressure somewhere in its text."""
    terms = search_terms(search_term)
    phrase = " ".join(terms)
    parts = []
    for name, weight in weights.items():
        if len(terms) > 1:
            parts.append(Case(When(Q(**{f"{name}__icontains": phrase}), then=Value(3 * weight)), default=Value(0)))
        for term in terms:
            parts.append(Case(When(Q(**{f"{name}__icontains": term}), then=Value(weight)), default=Value(0)))
    if not parts:
        return Value(0, output_field=IntegerField())
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


class RankedSearchMixin:
    """An admin search whose results come best match first (``search_rank``), not in the list's
    usual order (where, say, a high-priority rule that merely mentions the words would come
    before the entry about them). Sorting by a column header still sorts by that column."""

    search_rank_weights: ClassVar[dict[str, int]] = {}  # field -> weight; set by each admin

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_terms(search_term) and self.search_rank_weights and not request.GET.get(ORDER_VAR):
            queryset = queryset.annotate(search_rank=search_rank(search_term, self.search_rank_weights)).order_by(
                "-search_rank", *queryset.query.order_by
            )
        return queryset, may_have_duplicates


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
class PassageAdmin(RankedSearchMixin, KnowledgeAdmin):
    list_display = ["title", "focus", "question_type", "source", "updated_at"]
    list_filter = ["source", "question_type", "source__enabled"]
    list_select_related = ["source"]
    list_per_page = 50
    # A whole MedQuAD import is ~15k rows: counting every filtered page twice is wasted time.
    show_full_result_count = False
    search_fields = ["title", "focus", "synonyms", "text"]
    search_rank_weights = {"title": 4, "focus": 4, "synonyms": 2, "text": 1}
    search_help_text = "Searches titles, focus, synonyms and text; best matches first."
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


def topic_exists(focus: str) -> bool:
    """Whether a passage or a curated entry is about ``focus``, by any name its focus goes by, as
    the search attaches aliases (``inference.retrieval.with_aliases``): "Hepatitis C" is the topic
    of "What I need to know about Hepatitis C"; "fibrillation" is no topic's name."""
    from inference.models import FallbackRule
    from knowledge.search import focus_variants

    wanted = " ".join(focus.lower().split())
    if FallbackRule.objects.filter(title__iexact=focus).exists():
        return True
    candidates = Passage.objects.filter(focus__icontains=focus).values_list("focus", flat=True).distinct()[:500]
    return any(wanted in {variant.lower() for variant in focus_variants(name)} for name in candidates)


class AliasForm(forms.ModelForm):
    class Meta:
        model = Alias
        fields = ["name", "focus", "enabled", "note"]

    def clean_name(self) -> str:
        from inference.triage import known_words

        name = " ".join(self.cleaned_data["name"].split())
        if len(re.findall(r"[^\W\d_]", name)) < 2:
            raise forms.ValidationError("An alias needs at least two letters.")
        if " " not in name and name.lower() in known_words():
            raise forms.ValidationError(
                f"“{name}” is an everyday word: every message that uses it would be read as this topic. "
                "Use a longer phrase."
            )
        return name

    def clean_focus(self) -> str:
        focus = " ".join(self.cleaned_data["focus"].split())
        if not topic_exists(focus):
            raise forms.ValidationError(
                f"No passage or curated entry is about “{focus}”. Give the focus as a passage names it "
                "(search the passages) or a curated entry's title."
            )
        return focus

    def clean(self) -> dict:
        data = super().clean()
        name, focus = data.get("name"), data.get("focus")
        if name and focus:
            same = Alias.objects.filter(name__iexact=name, focus__iexact=focus).exclude(pk=self.instance.pk)
            if same.exists():
                raise forms.ValidationError(f"“{name}” is already an alias of “{focus}”.")
        return data


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    form = AliasForm
    actions = enabled_switches("aliases", lambda model: [versions.KNOWLEDGE])
    list_display = ["name", "focus", "enabled", "topic_found", "updated_at"]
    list_per_page = 50
    list_filter = ["enabled"]
    search_fields = ["name", "focus", "note"]
    search_help_text = "Searches the aliases, their topics and notes."
    fields = ["name", "focus", "enabled", "note", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="Topic found", boolean=True)
    def topic_found(self, alias: Alias) -> bool:
        # Shipped aliases name MedQuAD topics: until MedQuAD is imported they attach to nothing.
        return topic_exists(alias.focus)
