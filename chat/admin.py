"""The admin for conversations and feedback.

Transcripts are a record: readable by those allowed to read them, never added or edited here
(superusers may delete a whole conversation, for a data-deletion request). Feedback is read-only
too, except for one curator workflow: turning a thumbs-down answer into a corrected training
example ("promote"). Feedback is shown from the copy each rating keeps of what it rates, so it
reads the same after its conversation is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from chat.forms import ThrottledAdminAuthenticationForm
from chat.models import Conversation, Feedback, Message, Source
from inference.retrieval import CURATED_SOURCE, cited_title

# The admin's log-in obeys the same failed-login limits as the site's.
admin.site.login_form = ThrottledAdminAuthenticationForm


def excerpt(text: str, length: int = 100) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- transcripts -------------------------------------------------------------------------------


class MessageInline(admin.TabularInline):
    """The transcript on its conversation's page. Messages are never edited after they are saved."""

    model = Message
    fields = ["created_at", "role", "content", "source", "matched_rule", "adapter_version", "latency_ms", "partial"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Read-only. Deleting stays with the model permission (superusers, for a data-deletion
    request); nobody rewrites what was said.

    Nothing that owns an anonymous conversation is shown (not even ``owner_key_hash``, which
    cannot log anyone in but is nobody's business): staff read transcripts, they do not
    become their visitors."""

    inlines = [MessageInline]
    list_display = ["__str__", "owner", "message_count", "created_at", "updated_at"]
    search_fields = ["title", "owner__username"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    fields = ["title", "owner", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_message_count=Count("messages"))

    @admin.display(description="Messages", ordering="_message_count")
    def message_count(self, obj: Conversation) -> int:
        return obj._message_count

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    def get_deleted_objects(self, objs: Iterable[Model], request: HttpRequest) -> tuple[Any, ...]:
        """A conversation's messages go with it. Nobody deletes one message alone (``MessageAdmin``
        refuses), which Django's delete page took as "you may not delete this conversation" even
        for a superuser answering a data-deletion request. Its ratings stay, with copies of what
        they rate and no link back (``Feedback.message`` is set to NULL)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed = {name for name in perms_needed if name != Message._meta.verbose_name}
        return deleted, counts, perms_needed, protected


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "conversation", "role", "source", "matched_rule", "latency_ms", "created_at"]
    list_filter = ["role", "source", "partial"]
    search_fields = ["content", "matched_rule"]
    date_hierarchy = "created_at"
    list_select_related = ["conversation"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


# --- feedback ----------------------------------------------------------------------------------


class PromotionError(ValueError):
    """Feedback that cannot become a training example; the message says why."""


def question_for(answer: Message) -> Message | None:
    """The user's question the answer replied to (its ``reply_to`` link, never a guess by order:
    two asks in flight at once would pair an answer with the wrong question)."""
    return answer.reply_to


def check_promotable(feedback: Feedback) -> str:
    """The question to pair the corrected answer with; raises PromotionError if there is none.

    The question as stored with the rating, or, for a rating older than that copy, the answer's
    own question. A rating whose conversation was deleted is promoted from its copy."""
    if feedback.promoted:
        raise PromotionError("This feedback was already promoted to a training example.")
    if feedback.rating != Feedback.Rating.DOWN:
        raise PromotionError("Only answers rated not helpful are promoted.")
    if feedback.message is not None:
        if feedback.message.role != Message.Role.ASSISTANT:
            raise PromotionError("This feedback is not on an answer.")
        question = question_for(feedback.message)
        if question is not None:
            return question.content
    if feedback.question:
        return feedback.question
    raise PromotionError("The question this answer replied to is gone.")


def promote_feedback(feedback_id: int, corrected_answer: str) -> models.Model:
    """Create a TrainingExample (origin "feedback") from the question and the curator's corrected
    answer, and mark the feedback promoted. Returns the example; raises PromotionError.

    The row is locked and re-checked inside the transaction, so two curators promoting the same
    feedback at once create one example. TrainingExample is looked up through the app registry:
    chat does not import the training app."""
    example_model = apps.get_model("training", "TrainingExample")
    with transaction.atomic():
        feedback = Feedback.objects.select_for_update().get(pk=feedback_id)
        question = check_promotable(feedback)
        example = example_model.objects.create(question=question, answer=corrected_answer, origin="feedback")
        feedback.promoted = True
        feedback.save(update_fields=["promoted"])
    return example


@dataclass(frozen=True)
class Origin:
    """A curated entry, passage or emergency rule an answer came from, and its admin page."""

    title: str
    url: str  # "" when it is no longer there


def _rule_url(title: str) -> str:
    rule_model = apps.get_model("inference", "FallbackRule")
    pk = rule_model.objects.filter(title=title).order_by("-pk").values_list("pk", flat=True).first()
    return reverse("admin:inference_fallbackrule_change", args=[pk]) if pk is not None else ""


def _passage_url(source: str, title: str) -> str:
    passage_model = apps.get_model("knowledge", "Passage")
    # A citation shows a title as ``cited_title`` words it ("Asthma" for "What is (are) Asthma?").
    found = passage_model.objects.filter(source__name=source, title__contains=title).values_list("pk", "title")
    pks = [pk for pk, stored in found[:50] if cited_title(stored) == title][:2]
    if len(pks) == 1:
        return reverse("admin:knowledge_passage_change", args=[pks[0]])
    if pks:  # the same title twice in one source: the list of them
        return f"{reverse('admin:knowledge_passage_changelist')}?{urlencode({'q': title})}"
    return ""


def _emergency_url(name: str) -> str:
    rule_model = apps.get_model("inference", "EmergencyRule")
    pk = rule_model.objects.filter(name=name).values_list("pk", flat=True).first()
    return reverse("admin:inference_emergencyrule_change", args=[pk]) if pk is not None else ""


def origins_of(feedback: Feedback, first_only: bool = False) -> list[Origin]:
    """Where the rated answer came from, the entry that answered first, found by the titles the
    rating keeps (``citations``, ``matched_rule``): they outlive the answer. The linked pages
    check their own permissions."""
    if feedback.source == Source.EMERGENCY and feedback.matched_rule:
        return [Origin(feedback.matched_rule, _emergency_url(feedback.matched_rule))]
    origins = []
    for citation in feedback.citations[:1] if first_only else feedback.citations:
        title, source = citation.get("title", ""), citation.get("source", "")
        if source == CURATED_SOURCE:
            origins.append(Origin(title, _rule_url(title)))
        elif title:
            origins.append(Origin(title, _passage_url(source, title)))
    return origins


def origin_link(origin: Origin) -> str:
    if not origin.url:
        return format_html("{} <small>(since removed)</small>", origin.title)
    return format_html('<a href="{}">{}</a>', origin.url, origin.title)


class PromoteForm(forms.Form):
    answer = forms.CharField(
        label="Corrected answer",
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80}),
        help_text="What MedBot should have said, in plain language. It becomes a training example.",
    )


@admin.action(description="Promote the selected thumbs-down answer to a training example", permissions=["promote"])
def promote(modeladmin: FeedbackAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
    """Opens the promote page, where the curator writes the corrected answer."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one feedback to promote.", messages.ERROR)
        return None
    return HttpResponseRedirect(reverse("admin:chat_feedback_promote", args=[queryset.get().pk]))


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    """Ratings, read from the copies each keeps of what was rated (``Feedback.copy_rated``), so
    they read the same after their conversation is deleted.

    The list is a few short columns, so that it reads on a 1,280-pixel screen next to the admin's
    menu and the filters: the answer itself, all its sources and the conversation are on each
    rating's own page."""

    actions = [promote]
    list_display = ["rated", "verdict", "question_and_comment", "answered_from", "promote_link"]
    list_display_links = ["rated", "verdict"]
    list_filter = ["rating", "reason", "promoted", "source"]
    search_fields = ["question", "answer", "comment", "matched_rule"]
    search_help_text = "Searches the question, the answer, the comment and the entry that answered."
    date_hierarchy = "created_at"
    list_per_page = 50
    fields = [
        "rating",
        "reason",
        "comment",
        "promoted",
        "created_at",
        "question",
        "answer",
        "source",
        "sources",
        "conversation",
    ]
    readonly_fields = fields

    @admin.display(description="Rated", ordering="created_at")
    def rated(self, obj: Feedback) -> str:
        return date_format(localtime(obj.created_at), "j M Y")

    @admin.display(description="Rating", ordering="rating")
    def verdict(self, obj: Feedback) -> str:
        rating = "Helpful" if obj.rating == Feedback.Rating.UP else "Not helpful"
        return f"{rating}: {obj.get_reason_display().lower()}" if obj.reason else rating

    @admin.display(description="Question (and comment)")
    def question_and_comment(self, obj: Feedback) -> str:
        question = excerpt(obj.question, 80) if obj.question else "–"
        if not obj.comment:
            return question
        return format_html("{}<br><small>“{}”</small>", question, excerpt(obj.comment, 60))

    @admin.display(description="Answered from")
    def answered_from(self, obj: Feedback) -> str:
        origins = origins_of(obj, first_only=True)
        if origins:
            return origin_link(Origin(excerpt(origins[0].title, 45), origins[0].url))
        return obj.get_source_display() if obj.source else "–"

    @admin.display(description="Sources")
    def sources(self, obj: Feedback) -> str:
        origins = origins_of(obj)
        if not origins:
            return "–"
        return format_html_join(mark_safe("<br>"), "{}", ((origin_link(origin),) for origin in origins))

    @admin.display(description="Conversation")
    def conversation(self, obj: Feedback) -> str:
        if obj.message is None:
            return "Deleted (this rating keeps a copy of the question and answer)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:chat_conversation_change", args=[obj.message.conversation_id]),
            f"Conversation {obj.message.conversation_id}",
        )

    @admin.display(description="")
    def promote_link(self, obj: Feedback) -> str:
        if obj.promoted:
            return "Promoted"
        if obj.rating != Feedback.Rating.DOWN:
            return ""
        return format_html('<a href="{}">Promote…</a>', reverse("admin:chat_feedback_promote", args=[obj.pk]))

    def get_list_display(self, request: HttpRequest) -> list[str]:
        shown = list(super().get_list_display(request))
        return shown if self.has_promote_permission(request) else [name for name in shown if name != "promote_link"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Feedback | None = None) -> bool:
        # Model-level "change" (obj None) is what promoting needs; a feedback's own page is view-only.
        return obj is None and super().has_change_permission(request)

    def has_promote_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request) and request.user.has_perm("training.add_trainingexample")

    def get_urls(self) -> list[URLPattern]:
        # Before the defaults: "<path:object_id>/" would swallow "<pk>/promote/".
        return [
            path("<int:pk>/promote/", self.admin_site.admin_view(self.promote_view), name="chat_feedback_promote"),
            *super().get_urls(),
        ]

    def promote_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_promote_permission(request):
            raise PermissionDenied
        feedback = get_object_or_404(Feedback.objects.select_related("message__reply_to"), pk=pk)
        changelist = reverse("admin:chat_feedback_changelist")
        try:
            question = check_promotable(feedback)
        except PromotionError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(changelist)
        form = PromoteForm(request.POST or None, initial={"answer": feedback.answer})
        if request.method == "POST" and form.is_valid():
            try:
                example = promote_feedback(feedback.pk, form.cleaned_data["answer"])
            except PromotionError as error:
                self.message_user(request, str(error), messages.ERROR)
                return HttpResponseRedirect(changelist)
            self.message_user(request, f"Added training example {example.pk} from this feedback.", messages.SUCCESS)
            return HttpResponseRedirect(changelist)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Promote to a training example",
            "feedback": feedback,
            "question": question,
            "origins": [origin_link(origin) for origin in origins_of(feedback)],
            "form": form,
        }
        return TemplateResponse(request, "admin/chat/feedback/promote.html", context)
