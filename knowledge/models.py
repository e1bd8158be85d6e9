"""Reviewed sources and their passages: what MedBot is allowed to say.

A KnowledgeSource is a publisher's collection (MedQuAD's NIH subsets, a clinic's leaflets); a
Passage is one answer-sized piece of it, about one focus (a condition, drug or test) and, where
known, one question type (symptoms, treatment, ...). The curated fallback rules in ``inference``
are the built-in source, written in our own words; they join these passages in the search index.
"""

from __future__ import annotations

from django.db import models


class QuestionType(models.TextChoices):
    """What a question asks about its focus. MedQuAD's own labels, so imports keep them."""

    INFORMATION = "information", "What it is"
    SYMPTOMS = "symptoms", "Symptoms"
    CAUSES = "causes", "Causes"
    TREATMENT = "treatment", "Treatment"
    PREVENTION = "prevention", "Prevention"
    EXAMS = "exams and tests", "Diagnosis and tests"
    SUSCEPTIBILITY = "susceptibility", "Who is at risk"
    OUTLOOK = "outlook", "Outlook"
    COMPLICATIONS = "complications", "Complications"
    FREQUENCY = "frequency", "How common"
    INHERITANCE = "inheritance", "Inheritance"
    GENETIC_CHANGES = "genetic changes", "Genetic changes"
    STAGES = "stages", "Stages"
    RESEARCH = "research", "Research"
    CONSIDERATIONS = "considerations", "Considerations"
    SUPPORT = "support groups", "Support groups"


class KnowledgeSource(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="Short unique name, used by the importer.")
    publisher = models.CharField(max_length=200, blank=True, help_text="Who wrote and reviewed it, as cited.")
    url = models.URLField(max_length=500, blank=True, help_text="Where the source can be read.")
    licence = models.CharField(max_length=100, blank=True, help_text="e.g. 'CC BY 4.0'.")
    enabled = models.BooleanField(
        default=True, db_index=True, help_text="Disabled sources are left out of answers at once."
    )
    last_reviewed = models.DateField(null=True, blank=True, help_text="When a person last checked this source.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Passage(models.Model):
    source = models.ForeignKey(KnowledgeSource, on_delete=models.CASCADE, related_name="passages")
    external_id = models.CharField(
        max_length=200, help_text="Stable id within the source; re-importing updates the passage with this id."
    )
    title = models.CharField(max_length=500, help_text="The question it answers, or its heading.")
    focus = models.CharField(
        max_length=300, db_index=True, help_text="The condition, drug or test it is about, as its source names it."
    )
    synonyms = models.TextField(blank=True, help_text="Other names for the focus, one per line.")
    question_type = models.CharField(max_length=40, choices=QuestionType.choices, blank=True)
    text = models.TextField(help_text="The reviewed answer text. Shown as text, never as HTML.")
    url = models.URLField(max_length=500, blank=True, help_text="Where this passage can be read at its source.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["source", "focus", "pk"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="passage_unique_per_source")]

    def __str__(self) -> str:
        return self.title

    def synonym_list(self) -> list[str]:
        return [line.strip() for line in self.synonyms.splitlines() if line.strip()]


class Alias(models.Model):
    """A name people use for a topic that its sources do not give: "afib" for atrial fibrillation,
    "bowel cancer" for colorectal cancer. Kept apart from the passages, so a re-import that rewrites
    their synonyms keeps what curators added. A question that uses the alias finds the topic as if it
    used the topic's own name."""

    name = models.CharField(max_length=200, help_text="What people say, e.g. 'afib' or 'bowel cancer'.")
    focus = models.CharField(
        max_length=300,
        db_index=True,
        help_text=(
            "The topic as MedBot's sources name it: a passage's focus or a curated entry's title, e.g. "
            "'Atrial Fibrillation'. Capitals do not matter."
        ),
    )
    enabled = models.BooleanField(default=True, db_index=True)
    note = models.CharField(max_length=300, blank=True, help_text="Why it was added, or who asked for it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["focus", "name"]
        verbose_name_plural = "aliases"
        constraints = [models.UniqueConstraint(fields=["name", "focus"], name="alias_unique_per_focus")]

    def __str__(self) -> str:
        return f"{self.name} → {self.focus}"
