"""Conversations, their messages, and feedback on answers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Source(models.TextChoices):
    MODEL = "model", "Model"
    EXTRACT = "extract", "From trusted sources"
    RULE = "rule", "Curated answer"
    EMERGENCY = "emergency", "Emergency"
    UNAVAILABLE = "unavailable", "No reliable answer"


class TriageLevel(models.TextChoices):
    EMERGENCY = "emergency", "Emergency"
    URGENT = "urgent", "Urgent"
    ROUTINE = "routine", "Routine"


class ConversationQuerySet(models.QuerySet):
    def owned_by(self, user, owner_key: str | None) -> ConversationQuerySet:
        """Conversations the requester may see: a signed-in user's own, or an anonymous visitor's,
        found by the hash of the owner secret in their session (``chat.ownership.owner_key``)."""
        if user is not None and user.is_authenticated:
            return self.filter(owner=user)
        if not owner_key:
            return self.none()
        return self.filter(owner__isnull=True, owner_key_hash=owner_key)


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="conversations",
        help_text="Empty for anonymous visitors, who own conversations through a secret in their session.",
    )
    owner_key_hash = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Anonymous visitors only: SHA-256 of a random owner secret kept in their session (never "
        "the session key). Not shown in the admin.",
    )
    answering_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set while an answer is being written; a second question waits for it (409).",
    )
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=False) | ~Q(owner_key_hash=""), name="conversation_has_an_owner"
            )
        ]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    def transcript(self, before: Message | None = None, last_questions: int | None = None) -> list[Message]:
        """The messages oldest first, each answer right after the question it replies to, even when
        answers were saved out of order. Answers with no link (older rows) stay where they fall.

        ``before``: only messages older than this one. ``last_questions``: start at the Nth
        newest question, so long conversations are not read whole (answers linked to an earlier
        question are then left out)."""
        messages = self.messages.order_by("id")
        if before is not None:
            messages = messages.filter(id__lt=before.id)
        if last_questions is not None:
            questions = messages.filter(role=Message.Role.USER).order_by("-id").values_list("id", flat=True)
            first = list(questions[:last_questions])[-1:]
            if first:
                messages = messages.filter(id__gte=first[0])
        rows = list(messages)
        question_ids = {m.pk for m in rows if m.role == Message.Role.USER}
        replies: dict[int, list[Message]] = {}
        for message in rows:
            if message.role == Message.Role.ASSISTANT and message.reply_to_id in question_ids:
                replies.setdefault(message.reply_to_id, []).append(message)
        ordered: list[Message] = []
        for message in rows:
            if message.role == Message.Role.USER:
                ordered += [message, *replies.get(message.pk, [])]
            elif message.reply_to_id is None:
                ordered.append(message)
        return ordered

    def title_from(self, question: str) -> str:
        words = " ".join(question.split())
        return words if len(words) <= 80 else words[:77].rstrip() + "…"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        help_text="Answers only: the question this answers.",
    )
    content = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices, blank=True)
    matched_rule = models.CharField(max_length=200, blank=True, help_text="Title of the curated entry used, if any.")
    disclaimer = models.TextField(blank=True, help_text="The disclaimer shown with this answer.")
    adapter_version = models.CharField(max_length=64, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens = models.PositiveIntegerField(null=True, blank=True)
    partial = models.BooleanField(default=False, help_text="The client left before the answer finished.")
    triage_level = models.CharField(
        max_length=16, choices=TriageLevel.choices, blank=True, help_text="Triage of the question this answers."
    )
    fallback = models.CharField(
        max_length=32,
        blank=True,
        help_text='Why the answer is not the model\'s own, if it is not: "no knowledge", "faithfulness gate", '
        '"timeout", "pleasantry" (MedBot\'s reply to thanks or a greeting)...',
    )
    triage_note = models.TextField(
        blank=True, help_text="The urgent banner shown above the answer (what to do today), if any."
    )
    citations = models.JSONField(
        default=list,
        blank=True,
        help_text="The sources the answer came from: a list of {title, publisher, url, source}.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.pop("allow_update", False):
            raise ValueError("Messages are never edited after they are saved.")
        super().save(*args, **kwargs)

    PLEASANTRY = "pleasantry"  # inference.pipeline.Fallback.PLEASANTRY, as stored

    @property
    def is_pleasantry(self) -> bool:
        """MedBot's reply to thanks, a greeting or a goodbye: not an answer, so not "No reliable answer"."""
        return self.source == Source.UNAVAILABLE and self.fallback == self.PLEASANTRY


class Feedback(models.Model):
    """A rating of one answer. The rated question and answer (and where the answer came from)
    are copied here when the rating is saved: deleting the conversation (a data-deletion
    request) deletes its messages and drops this row's link to them, and so to their owner,
    while curators keep what was rated."""

    class Rating(models.IntegerChoices):
        UP = 1, "Helpful"
        DOWN = -1, "Not helpful"

    class Reason(models.TextChoices):
        WRONG = "wrong", "Incorrect"
        UNCLEAR = "unclear", "Unclear"
        UNSAFE = "unsafe", "Unsafe"
        OFF_TOPIC = "off_topic", "Off topic"
        OTHER = "other", "Other"

    message = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="feedback",
        help_text="The rated answer; empty once its conversation is deleted.",
    )
    rating = models.SmallIntegerField(choices=Rating.choices)
    reason = models.CharField(max_length=16, choices=Reason.choices, blank=True)
    comment = models.TextField(blank=True, max_length=1000)
    question = models.TextField(blank=True, help_text="The question the rated answer replied to, as asked.")
    answer = models.TextField(blank=True, help_text="The rated answer, as given.")
    source = models.CharField(
        max_length=16, choices=Source.choices, blank=True, help_text="Where the rated answer came from."
    )
    matched_rule = models.CharField(
        max_length=200, blank=True, help_text="The curated entry, passage or emergency rule that answered, if any."
    )
    citations = models.JSONField(
        default=list, blank=True, help_text="The rated answer's sources: a list of {title, publisher, url, source}."
    )
    promoted = models.BooleanField(default=False, help_text="A curator turned this into a training example.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["message"], name="one_rating_per_message")]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on “{self.question[:60] or self.answer[:60]}”"

    def save(self, *args, **kwargs) -> None:
        if self.message_id is not None and not self.answer:
            self.copy_rated(self.message)
        super().save(*args, **kwargs)

    def copy_rated(self, message: Message) -> None:
        """Copy what was rated off the answer, so the rating outlives its conversation."""
        question = message.reply_to
        self.question = question.content if question is not None else ""
        self.answer = message.content
        self.source = message.source
        self.matched_rule = message.matched_rule
        self.citations = list(message.citations or [])
