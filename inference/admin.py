"""The admin for curated safety data and the audit log: how MedBot is steered without code.

Every change a curator makes here reaches running servers within one request: saves and deletes
bump the shared-cache version tokens through ``inference.signals``, and the bulk actions below,
which use ``queryset.update()`` (no signals), bump them explicitly.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from inference import pipeline, triage, versions
from inference.models import AuditLog, Concept, Disclaimer, EmergencyRule, FallbackRule
from inference.retrieval import retriever, rule_id
from inference.text import clean_input
from knowledge.admin import RankedSearchMixin, enabled_switches
from knowledge.search import Hit
from medbot_site.admin_history import VersionHistoryMixin

admin.site.site_header = "MedBot administration"
admin.site.site_title = "MedBot admin"


# --- rules -------------------------------------------------------------------------------------


def _versions_to_bump(model: type[Model]) -> list[str]:
    # Curated entries feed the knowledge index (RULES); emergency rules and concepts feed triage.
    return [versions.RULES, triage.TRIAGE] if model in (EmergencyRule, Concept) else [versions.RULES]


rule_switches = enabled_switches("rules", _versions_to_bump)


class TryQuestionForm(forms.Form):
    question = forms.CharField(
        max_length=settings.MEDBOT_MAX_QUESTION_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Asked exactly as a user would ask it, without history. Hit counts are left unchanged.",
    )


@dataclass
class FoundPassage:
    title: str
    source: str
    admin_url: str  # where a curator edits it
    focus_matched: bool  # the question names its focus
    type_matched: bool  # it answers the question's kind (symptoms, treatment...)


def found_passage(hit: Hit) -> FoundPassage:
    pk = rule_id(hit.document)
    if pk is not None:
        url = reverse("admin:inference_fallbackrule_change", args=[pk])
    else:
        url = reverse("admin:knowledge_passage_change", args=[int(hit.document.key.split(":")[1])])
    return FoundPassage(hit.document.title, hit.document.source, url, hit.focus_matched, hit.type_matched)


# What the try page says, in curators' words: no internal names, settings or scores.
SOURCE_WORDS = {
    pipeline.Source.MODEL: "Written by the language model from the entries below, and checked against them",
    pipeline.Source.EXTRACT: "Sentences taken from the entries below",
    pipeline.Source.RULE: "The curated answer, as written",
    pipeline.Source.EMERGENCY: "The emergency advice",
    pipeline.Source.UNAVAILABLE: "“No reliable answer”: nothing in the knowledge base answers it",
}
WHY_NOT_THE_MODEL = {
    pipeline.Fallback.NO_KNOWLEDGE: "Nothing in the knowledge base answers it.",
    pipeline.Fallback.MODEL_OFF: "The language model is switched off on this server.",
    pipeline.Fallback.MODEL_LOADING: "The language model is still starting up.",
    pipeline.Fallback.MODEL_FAILED: "The language model could not start on this server.",
    pipeline.Fallback.MODEL_ERROR: "The language model failed on this question.",
    pipeline.Fallback.TIMEOUT: "The language model took too long.",
    pipeline.Fallback.QUALITY: "The language model's wording was not good enough to show.",
    pipeline.Fallback.UNFAITHFUL: "The language model said things the entries do not say.",
}
FIRED_BY = {"rules": "rules", "classifier": "the learned check", "both": "rules and the learned check"}
HOW_READ = {
    "negated": "negated: not counted",
    "hypothetical": "only a what-if: not counted",
    "past": "in the past: not counted",
    "resolved": "over now: not counted",
}
CONTEXT_WORDS = {
    "negation": "a denial (“no”, “not”)",
    "uncertainty": "doubt (“not sure”)",
    "hypothetical": "a what-if (“if”, “in case”)",
    "past": "the past (“years ago”)",
    "now": "now (“right now”, “I'm having”)",
    "resolved": "something that has stopped",
    "asking_about": "a question about a condition (“what is”, “signs of”)",
    "asking_general": "a general question (“can you”, “how long”)",
    "personal": "someone being described (“I”, “my dad”)",
}


def learned_check(explanation: triage.Explanation) -> str:
    """The classifier's opinion in words: how sure it is, not its score."""
    if explanation.probability is None:
        return "Switched off."
    if explanation.probability >= explanation.sure:
        return "Reads it as an emergency."
    if explanation.probability >= explanation.threshold:
        return "Reads it as a possible emergency: enough to raise the alarm when someone describes a symptom."
    return "Does not read it as an emergency."


@dataclass
class TryResult:
    """Everything the try page shows: what the pipeline sees and what it would answer."""

    question: str
    emergency_rule_id: int | None
    emergency_name: str
    triage: triage.Explanation | None = None  # level, concepts found, the rule, the classifier's opinion
    candidates: list[FoundPassage] = field(default_factory=list)
    answer: pipeline.AnswerResult | None = None

    @property
    def source(self) -> str:
        return SOURCE_WORDS.get(self.answer.source, self.answer.source) if self.answer else ""

    @property
    def why_not_the_model(self) -> str:
        if self.answer is None or self.answer.fallback_reason is pipeline.Fallback.NONE:
            return ""
        return WHY_NOT_THE_MODEL.get(self.answer.fallback_reason, "")

    @property
    def fired_by(self) -> str:
        return FIRED_BY.get(self.triage.result.by, "") if self.triage else ""

    @property
    def words_read(self) -> list[tuple[str, str, str]]:
        """(concept, the words, how they were read): "" when they count."""
        return [(concept, words, HOW_READ.get(status, "")) for concept, words, status in self.triage.found]

    @property
    def context(self) -> list[str]:
        return [CONTEXT_WORDS.get(cue, cue.replace("_", " ")) for cue in self.triage.context]

    @property
    def learned_check(self) -> str:
        return learned_check(self.triage) if self.triage else ""


def try_question(question: str) -> TryResult:
    """Run ``question`` through triage, retrieval and the full pipeline without counting hits.

    The pipeline counts a hit on the rule that answers; a curator's trial is not a user's
    question, so the answer runs in a transaction that is rolled back. The answer cache may
    keep the result: it is exactly what a user asking the same question would get."""
    cleaned = clean_input(question)
    explanation = triage.explain(cleaned)  # counts no hit
    candidates = [found_passage(hit) for hit in retriever.search(cleaned, limit=3)]
    with transaction.atomic():
        result = pipeline.answer(question)
        transaction.set_rollback(True)
    return TryResult(
        question=cleaned,
        emergency_rule_id=explanation.rule_id if explanation.result.level == triage.EMERGENCY else None,
        emergency_name=explanation.result.rule if explanation.result.level == triage.EMERGENCY else "",
        triage=explanation,
        candidates=candidates,
        answer=result,
    )


class RuleAdmin(RankedSearchMixin, VersionHistoryMixin, admin.ModelAdmin):
    """What fallback and emergency rules share: bulk switches, read-only hit counts, a search
    that lists the best matches first, and a history of every change (before and after) from
    which an earlier version can be put back."""

    actions = rule_switches
    list_filter = ["enabled"]
    list_per_page = 50
    readonly_fields = ["hit_count", "created_at", "updated_at"]


@admin.register(FallbackRule)
class FallbackRuleAdmin(RuleAdmin):
    list_display = ["title", "priority", "enabled", "hit_count", "updated_at"]
    search_fields = ["title", "triggers", "answer"]
    search_rank_weights = {"title": 4, "triggers": 2, "answer": 1}
    search_help_text = "Searches titles, phrases and answers; best matches first."
    fields = ["title", "triggers", "answer", "priority", "enabled", "hit_count", "created_at", "updated_at"]
    # The model's help text names the ranking algorithm; curators need to know what it reads.
    TRIGGERS_HELP = (
        "Phrases and keywords people use for this topic, one per line. A question is matched against "
        "these, the title and the answer; the closest match answers."
    )

    def get_form(self, request: HttpRequest, obj: FallbackRule | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        if "triggers" in form.base_fields:
            form.base_fields["triggers"].help_text = self.TRIGGERS_HELP
        return form

    def get_urls(self) -> list[URLPattern]:
        # Before the defaults: "<path:object_id>/" would swallow "try/".
        return [
            path("try/", self.admin_site.admin_view(self.try_view), name="inference_fallbackrule_try"),
            *super().get_urls(),
        ]

    def try_view(self, request: HttpRequest) -> HttpResponse:
        """POST, not GET: questions can be personal and should not end up in access logs."""
        # Linked from both rule lists: either view permission is enough to look.
        if not (
            self.has_view_permission(request)
            or request.user.has_perm("inference.view_emergencyrule")
            or request.user.has_perm("inference.view_concept")
        ):
            raise PermissionDenied
        form = TryQuestionForm(request.POST or None)
        result = try_question(form.cleaned_data["question"]) if request.method == "POST" and form.is_valid() else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Try a question",
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/inference/fallbackrule/try.html", context)


@admin.register(EmergencyRule)
class EmergencyRuleAdmin(RuleAdmin):
    """Red-flag rules: concept names combined in plain words. Regular expressions stay possible for
    experts, folded away."""

    list_display = ["name", "level", "condition", "priority", "enabled", "hit_count", "updated_at"]
    list_filter = ["level", "enabled"]
    search_fields = ["name", "condition", "patterns", "response"]
    search_rank_weights = {"name": 4, "condition": 2, "patterns": 1, "response": 1}
    fieldsets = [
        (None, {"fields": ["name", "level", "condition", "response", "priority", "enabled"]}),
        ("Advanced: regular expressions", {"classes": ["collapse"], "fields": ["patterns"]}),
        (None, {"fields": ["hit_count", "created_at", "updated_at"]}),
    ]

    def get_form(self, request: HttpRequest, obj: EmergencyRule | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        condition = form.base_fields.get("condition")
        if condition is not None:
            # The names a condition can use, so curators need not switch pages to look them up.
            names = ", ".join(Concept.objects.filter(enabled=True).order_by("name").values_list("name", flat=True))
            condition.help_text = f"{EmergencyRule._meta.get_field('condition').help_text} Concepts: {names}."
        return form


@admin.register(Concept)
class ConceptAdmin(VersionHistoryMixin, admin.ModelAdmin):
    """Concepts as curators write them: a name, a kind and the phrases people use, one per line."""

    actions = rule_switches
    list_display = ["name", "kind", "phrases", "enabled", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "synonyms", "description"]
    fields = ["name", "kind", "synonyms", "ranges", "description", "enabled", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 200  # every concept on one page (about 130): rules name them all
    # The same list template as the rules: a "Try a question" link above the list.
    change_list_template = "admin/inference/emergencyrule/change_list.html"

    @admin.display(description="Phrases")
    def phrases(self, obj: Concept) -> str:
        listed = obj.synonym_list()
        shown = ", ".join(listed[:6])
        return f"{shown}, … ({len(listed)})" if len(listed) > 6 else shown


# --- disclaimers -------------------------------------------------------------------------------


@admin.action(description="Activate the selected disclaimer", permissions=["change"])
def activate_disclaimer(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one disclaimer to activate.", messages.ERROR)
        return
    disclaimer = queryset.get()
    disclaimer.activate()  # its save() bumps the disclaimer version for every worker
    modeladmin.message_user(request, f"Disclaimer v{disclaimer.version} is now shown with every answer.")


@admin.register(Disclaimer)
class DisclaimerAdmin(admin.ModelAdmin):
    """A new wording is a new version: text is fixed once saved, so every version stays as it
    was shown, and only the action switches which one is active (exactly one)."""

    actions = [activate_disclaimer]
    list_display = ["version", "active", "excerpt", "created_at"]
    list_filter = ["active"]
    search_fields = ["text"]
    fields = ["version", "text", "active", "created_at"]
    readonly_fields = ["active", "created_at"]

    @admin.display(description="Text")
    def excerpt(self, obj: Disclaimer) -> str:
        return obj.text if len(obj.text) <= 100 else obj.text[:97] + "…"

    def has_change_permission(self, request: HttpRequest, obj: Disclaimer | None = None) -> bool:
        # Model-level "change" (obj None) gates the activate action; a saved version is view-only.
        return obj is None and super().has_change_permission(request)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        latest = Disclaimer.objects.order_by("-version").values_list("version", flat=True).first()
        return {"version": (latest or 0) + 1, **super().get_changeform_initial_data(request)}

    def get_deleted_objects(self, objs: Iterable[Model], request: HttpRequest) -> tuple[Any, ...]:
        """Refuse to delete the active disclaimer (single and bulk delete both come through here):
        answers would fall back to the built-in text without anyone choosing that."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        active = [obj for obj in objs if getattr(obj, "active", False)]
        if active:
            protected = [*protected, f"{active[0]} — the active disclaimer: activate another version first"]
        return deleted, model_count, perms_needed, protected


# --- the audit log -----------------------------------------------------------------------------

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A spreadsheet runs a cell that starts like a formula; a leading quote makes it text.
    Question text can be stored here and comes from anyone on the internet."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """csv.writer wants a file; this one hands each written line straight back."""

    def write(self, value: str) -> str:
        return value


AUDIT_COLUMNS = ["created_at", "client_id", "conversation_id", "source", "latency_ms", "adapter_version", "question"]


def audit_rows(queryset: QuerySet) -> Iterator[list[object]]:
    yield AUDIT_COLUMNS
    for row in queryset.order_by("created_at", "pk").values_list(*AUDIT_COLUMNS).iterator(chunk_size=2000):
        created_at, *rest = row
        yield [created_at.isoformat(), *(csv_cell(value) for value in rest)]


@admin.action(description="Export selected rows as CSV", permissions=["view"])
def export_audit_csv(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
    """Streamed, so a year of rows never sits in memory at once."""
    writer = csv.writer(_Echo())
    return StreamingHttpResponse(
        (writer.writerow(row) for row in audit_rows(queryset)),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="medbot-audit-log.csv"'},
    )


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """A record: nobody adds, edits or deletes rows here (``purge_audit_log`` enforces retention)."""

    actions = [export_audit_csv]
    date_hierarchy = "created_at"
    list_display = ["created_at", "source", "latency_ms", "adapter_version", "conversation_id", "client_id"]
    list_filter = ["source", "adapter_version"]
    search_fields = ["client_id", "adapter_version"]
    show_full_result_count = False  # a COUNT(*) on a big log for every page is not worth it

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False
