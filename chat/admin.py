"""The admin for conversations and feedback.

Transcripts are a record: readable by those allowed to read them, never added, edited or deleted
here. Feedback is read-only too, except for one curator workflow: turning a thumbs-down answer into
a corrected training example ("promote").
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from chat.forms import ThrottledAdminAuthenticationForm
from chat.models import Conversation, Feedback, Message

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


def check_promotable(feedback: Feedback) -> Message:
    """The question to pair the corrected answer with; raises PromotionError if there is none."""
    if feedback.promoted:
        raise PromotionError("This feedback was already promoted to a training example.")
    if feedback.rating != Feedback.Rating.DOWN:
        raise PromotionError("Only answers rated not helpful are promoted.")
    if feedback.message.role != Message.Role.ASSISTANT:
        raise PromotionError("This feedback is not on an answer.")
    question = question_for(feedback.message)
    if question is None:
        raise PromotionError("The question this answer replied to is gone.")
    return question


def promote_feedback(feedback_id: int, corrected_answer: str) -> models.Model:
    """Create a TrainingExample (origin "feedback") from the question and the curator's corrected
    answer, and mark the feedback promoted. Returns the example; raises PromotionError.

    The row is locked and re-checked inside the transaction, so two curators promoting the same
    feedback at once create one example. TrainingExample is looked up through the app registry:
    chat does not import the training app."""
    example_model = apps.get_model("training", "TrainingExample")
    with transaction.atomic():
        feedback = Feedback.objects.select_for_update().select_related("message").get(pk=feedback_id)
        question = check_promotable(feedback)
        example = example_model.objects.create(question=question.content, answer=corrected_answer, origin="feedback")
        feedback.promoted = True
        feedback.save(update_fields=["promoted"])
    return example


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
    actions = [promote]
    list_display = ["created_at", "rating", "reason", "answer_excerpt", "comment_excerpt", "promoted", "promote_link"]
    list_filter = ["rating", "reason", "promoted", "message__source"]
    search_fields = ["comment", "message__content"]
    date_hierarchy = "created_at"
    list_select_related = ["message"]
    fields = ["rating", "reason", "comment", "promoted", "created_at", "answer", "conversation"]
    readonly_fields = fields

    @admin.display(description="Answer")
    def answer_excerpt(self, obj: Feedback) -> str:
        return excerpt(obj.message.content)

    @admin.display(description="Comment")
    def comment_excerpt(self, obj: Feedback) -> str:
        return excerpt(obj.comment)

    @admin.display(description="Answer")
    def answer(self, obj: Feedback) -> str:
        return obj.message.content

    @admin.display(description="Conversation")
    def conversation(self, obj: Feedback) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:chat_conversation_change", args=[obj.message.conversation_id]),
            f"Conversation {obj.message.conversation_id}",
        )

    @admin.display(description="")
    def promote_link(self, obj: Feedback) -> str:
        if obj.promoted or obj.rating != Feedback.Rating.DOWN:
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
        feedback = get_object_or_404(Feedback.objects.select_related("message"), pk=pk)
        changelist = reverse("admin:chat_feedback_changelist")
        try:
            question = check_promotable(feedback)
        except PromotionError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(changelist)
        form = PromoteForm(request.POST or None, initial={"answer": feedback.message.content})
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
            "form": form,
        }
        return TemplateResponse(request, "admin/chat/feedback/promote.html", context)
