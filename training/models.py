"""Curated training data and the record of every fine-tuning run (adapter versions)."""

from __future__ import annotations

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone


class TrainingExample(models.Model):
    class Origin(models.TextChoices):
        FIXTURE = "fixture", "Fixture"
        IMPORT = "import", "Import"
        FEEDBACK = "feedback", "Feedback"
        KNOWLEDGE = "knowledge", "Knowledge base"

    question = models.TextField()
    answer = models.TextField()
    grounding = models.TextField(
        blank=True,
        help_text="The reference passages of the prompt, as serving builds them. Empty: found by retrieval at "
        "training time (curated examples, feedback).",
    )
    passage = models.ForeignKey(
        "knowledge.Passage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_examples",
        help_text="The passage the answer was taken from (examples built from the knowledge base).",
    )
    provenance = models.JSONField(
        default=dict, blank=True, help_text="How the example was made: wording of the question, passages retrieved."
    )
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.FIXTURE, db_index=True)
    enabled = models.BooleanField(default=True, db_index=True, help_text="Disabled examples are left out of training.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.question[:80]


class TrainingRun(models.Model):
    """One `manage.py train` run; its adapter folder is one adapter version."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    base_model = models.CharField(max_length=300)
    lora_rank = models.PositiveIntegerField(default=16)
    lora_alpha = models.PositiveIntegerField(default=32)
    lora_dropout = models.FloatField(default=0.05)
    target_modules = models.JSONField(default=list)
    epochs = models.FloatField(default=3)
    learning_rate = models.FloatField(default=2e-4)
    seed = models.IntegerField(default=42)
    example_count = models.PositiveIntegerField(default=0, help_text="Examples used: training plus validation.")
    train_loss = models.FloatField(
        null=True, blank=True, help_text="Mean training loss (answer tokens) over the steps before the last evaluation."
    )
    validation_loss = models.FloatField(
        null=True, blank=True, help_text="Loss on the held-out validation examples at the last evaluation."
    )
    loss_history = models.JSONField(
        default=list, blank=True, help_text="Evaluations as [{'step', 'epoch', 'train_loss', 'eval_loss'}]."
    )
    duration_seconds = models.FloatField(null=True, blank=True)
    config = models.JSONField(
        default=dict, blank=True, help_text="Every training option of the run (TrainConfig), so it can be repeated."
    )
    adapter_path = models.CharField(
        max_length=500, blank=True, help_text="Adapter folder, relative to MEDBOT_ADAPTER_DIR (e.g. run-3)."
    )
    adapter_size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    active = models.BooleanField(default=False, help_text="The adapter every server answers with.")
    notes = models.TextField(blank=True)
    evaluation = models.JSONField(
        default=dict,
        blank=True,
        help_text="The held-out evaluation against the base model: gate pass rate, unsupported sentences, "
        "ROUGE-L, and before/after answers.",
    )
    activation_override = models.TextField(
        blank=True, help_text="Why this adapter was activated although it did not beat the base model, and by whom."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_training_run"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.base_model}, {self.status})"

    @property
    def version(self) -> str:
        return f"run-{self.pk}"

    @property
    def beats_base(self) -> bool:
        """The evaluation found the adapter no worse than the base on every measure."""
        return bool(self.evaluation.get("verdict", {}).get("beats_base"))

    def activate(self, *, force: bool = False, reason: str = "", by: str = "") -> None:
        """Make this run's adapter the one servers answer with (also how to roll back).

        An adapter that did not beat the base model in its evaluation (or was never evaluated)
        is refused unless ``force`` is given with a reason, which is recorded on the run."""
        if self.status != self.Status.SUCCEEDED or not self.adapter_path:
            raise ValueError("Only a finished run with an adapter can be activated.")
        if not self.beats_base:
            if not force:
                raise ActivationRefused(self.refusal())
            if not reason.strip():
                raise ActivationRefused("An override needs a reason.")
        with transaction.atomic():
            TrainingRun.objects.filter(active=True).exclude(pk=self.pk).update(active=False)
            self.active = True
            fields = ["active"]
            if not self.beats_base:
                stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
                entry = f"{stamp} by {by or 'unknown'}: {reason.strip()}"
                self.activation_override = "\n".join(filter(None, [self.activation_override, entry]))
                fields.append("activation_override")
            self.save(update_fields=fields)

    def refusal(self) -> str:
        verdict = self.evaluation.get("verdict") or {}
        why = verdict.get("reasons") or ["it was not evaluated against the base model"]
        return (
            f"Run {self.pk} did not beat the base model ({'; '.join(why)}). "
            "Activate it anyway only with an override and a reason."
        )


class ActivationRefused(ValueError):
    """An adapter that scored below the base model, activated without an override."""
