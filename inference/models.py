"""Curated safety data: fallback answers, triage concepts and red-flag rules, disclaimers, and the audit log."""

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


class Concept(models.Model):
    """A clinical concept triage looks for, written as plain phrases rather than regular expressions.

    Red-flag rules (``EmergencyRule.condition``) combine concepts by name. See ``inference.triage.matcher``
    for how phrases match; the admin's help text repeats the essentials for curators."""

    class Kind(models.TextChoices):
        SYMPTOM = "symptom", "Symptom (what the person feels)"
        SIGN = "sign", "Sign (what others see)"
        MODIFIER = "modifier", "Modifier (sudden, severe, spreading)"
        PERSON = "person", "Person (baby, pregnant, diabetic)"
        MEASUREMENT = "measurement", "Measurement (a number in a range)"
        CONDITION = "condition", "Named condition (heart attack, stroke)"
        INTENT = "intent", "Intent (self-harm: never read as a question)"
        EVENT = "event", "Event (swallowed, took: reported like a symptom, never over)"
        CONTEXT = "context", "Context cue (negation, past, now: used by the matcher itself)"

    name = models.SlugField(
        max_length=60,
        unique=True,
        help_text="The name rules use, lower case with underscores, e.g. 'chest_discomfort'.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SYMPTOM)
    synonyms = models.TextField(
        help_text="How people say it, one phrase per line, in plain words: 'chest pain', 'elephant on my chest'. "
        "A trailing * matches any ending ('vomit*'); '...' stands for up to three words ('pain ... chest'); "
        "a line starting with ! is an exclusion ('!choking hazard'). Case, apostrophes and punctuation do not matter."
    )
    ranges = models.CharField(
        max_length=200,
        blank=True,
        help_text="Measurements only: the values that count, e.g. '38-43, 100.4-110' for a fever in °C or °F. "
        "A number in range within three words of a phrase ('temperature of 38.4') finds the concept.",
    )
    description = models.TextField(blank=True, help_text="What this concept means, for other curators.")
    enabled = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    def synonym_list(self) -> list[str]:
        return split_lines(self.synonyms)

    def clean(self) -> None:
        from inference.triage.matcher import parse_ranges

        if self.kind == self.Kind.MEASUREMENT and not parse_ranges(self.ranges):
            raise ValidationError({"ranges": "A measurement needs at least one range, written low-high (e.g. 38-43)."})
        if all(line.startswith("!") for line in self.synonym_list()):
            raise ValidationError({"synonyms": "Write at least one phrase that is not an exclusion."})


class EmergencyRule(models.Model):
    """A red-flag rule. An emergency match answers with the emergency text before any model runs; an
    urgent match answers normally under a "see a doctor today" banner."""

    class Level(models.TextChoices):
        EMERGENCY = "emergency", "Emergency: call the emergency number now"
        URGENT = "urgent", "Urgent: see a doctor or urgent care today"

    name = models.CharField(max_length=200, help_text="The red flag, e.g. 'Heart attack signs'.")
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.EMERGENCY)
    condition = models.TextField(
        blank=True,
        help_text="Concept names combined with AND, OR, NOT and brackets, e.g. "
        "'chest_discomfort AND (spreading OR sweating OR breathless OR faint)'. "
        "The rule fires when the message reports the concepts as happening now (not negated, not long ago, "
        "not a general question).",
    )
    patterns = models.TextField(
        blank=True,
        help_text="Optional, for experts: regular expressions (case-insensitive) matched against the normalised "
        "question, one per line. Prefer concepts: they handle negation, tense and questions.",
    )
    response = models.TextField(
        help_text="Emergency: what to do now. Urgent: the banner shown above the answer. "
        "'{number}' becomes the emergency number and '{crisis_line}' the crisis line."
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
        from inference.triage.matcher import ConditionError, condition_names, parse_condition

        if not self.condition.strip() and not self.pattern_list():
            raise ValidationError({"condition": "Write a condition (or, for experts, a pattern)."})
        if self.condition.strip():
            try:
                names = condition_names(parse_condition(self.condition))
            except ConditionError as error:
                raise ValidationError({"condition": f"Cannot read this condition: {error}."}) from error
            unknown = sorted(names - set(Concept.objects.values_list("name", flat=True)))
            if unknown:
                raise ValidationError({"condition": f"No concept is called {', '.join(unknown)}."})
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
