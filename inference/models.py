"""Curated safety data: fallback answers, emergency rules, disclaimers, and the audit log."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Q


def split_lines(text: str) -> list[str]:
    """One entry per non-blank line; used for trigger phrases and emergency patterns."""
    return [line.strip() for line in text.splitlines() if line.strip()]


class FallbackRule(models.Model):
    """A curated answer to a common question. It grounds the model's answer and stands in
    for the model when the model is unavailable or its output fails the quality gate."""

    title = models.CharField(max_length=200, help_text="Short topic name shown to curators and users.")
    triggers = models.TextField(
        help_text="Phrases and keywords people use for this topic, one per line. "
        "Matching is by relevance (BM25) over these, the title and the answer."
    )
    answer = models.TextField(help_text="The answer, in plain language. Shown as text, never as HTML.")
    priority = models.IntegerField(default=0, help_text="Breaks near-ties: higher wins.")
    enabled = models.BooleanField(default=True, db_index=True)
    hit_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="Times this rule answered or grounded."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "title"]

    def __str__(self) -> str:
        return self.title

    def trigger_list(self) -> list[str]:
        return split_lines(self.triggers)

    @classmethod
    def count_hit(cls, pk: int) -> None:
        """One more answer from this rule; an UPDATE, so concurrent workers never lose a count."""
        cls.objects.filter(pk=pk).update(hit_count=F("hit_count") + 1)


class EmergencyRule(models.Model):
    """A red-flag symptom pattern. A match answers with the emergency text before any model runs."""

    name = models.CharField(max_length=200, help_text="The red flag, e.g. 'Heart attack signs'.")
    patterns = models.TextField(
        help_text="Regular expressions (case-insensitive) matched against the normalised question, "
        "one per line. Write them for acute, first-hand descriptions, not educational questions."
    )
    response = models.TextField(
        help_text="What to do now. '{number}' becomes the emergency number and '{crisis_line}' the crisis line."
    )
    priority = models.IntegerField(default=0, help_text="When several rules match, the highest priority answers.")
    enabled = models.BooleanField(default=True, db_index=True)
    hit_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name

    def pattern_list(self) -> list[str]:
        return split_lines(self.patterns)

    def clean(self) -> None:
        for pattern in self.pattern_list():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValidationError(
                    {"patterns": f"{pattern!r} is not a valid regular expression: {error}"}
                ) from error

    @classmethod
    def count_hit(cls, pk: int) -> None:
        """One more answer from this rule; an UPDATE, so concurrent workers never lose a count."""
        cls.objects.filter(pk=pk).update(hit_count=F("hit_count") + 1)


class Disclaimer(models.Model):
    """The medical disclaimer appended to every answer. Exactly one is active; earlier
    versions are kept so old answers can be traced to the text they carried."""

    text = models.TextField()
    version = models.PositiveIntegerField(unique=True, help_text="Increases with each new wording.")
    active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_disclaimer"),
        ]

    def __str__(self) -> str:
        return f"v{self.version}{' (active)' if self.active else ''}"

    def activate(self) -> None:
        """Make this the only active disclaimer."""
        with transaction.atomic():
            Disclaimer.objects.filter(active=True).exclude(pk=self.pk).update(active=False)
            self.active = True
            self.save(update_fields=["active"])


class AuditLog(models.Model):
    """One row per answer when MEDBOT_AUDIT_LOG is on. Never holds a raw IP address."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    client_id = models.CharField(max_length=64, help_text="Keyed hash (HMAC-SHA256) of the client; not reversible.")
    conversation_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, db_index=True)
    latency_ms = models.PositiveIntegerField(default=0)
    adapter_version = models.CharField(max_length=64, blank=True)
    question = models.TextField(blank=True, help_text="Stored only when MEDBOT_AUDIT_LOG_TEXT is on.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.source}"
