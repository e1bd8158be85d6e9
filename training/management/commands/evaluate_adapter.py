"""``manage.py evaluate_adapter RUN``: evaluate a trained adapter against the base model again.

The same held-out comparison that ends ``manage.py train`` (training.evaluation), for an adapter
that already exists: after the gates or the knowledge base changed, or for a run whose evaluation
was stopped. The new result replaces the run's evaluation (the old one is kept in its notes)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import registry
from inference.adapters import resolve_adapter_path
from training.evaluation import evaluate
from training.knowledge_set import evaluation_questions
from training.models import TrainingRun
from training.pipeline import TrainConfig, evaluation_lines


class Command(BaseCommand):
    help = "Compare a training run's adapter with its base model on the held-out questions again."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", type=int, help="The TrainingRun id (run-<id>).")
        parser.add_argument(
            "--eval-questions", type=int, default=TrainConfig().eval_questions, help="Held-out questions (24)."
        )
        parser.add_argument("--seed", type=int, default=None, help="Which held-out questions (the run's seed).")

    def handle(self, *args: Any, **options: Any) -> None:
        from peft import PeftModel

        try:
            run = TrainingRun.objects.get(pk=options["run"])
        except TrainingRun.DoesNotExist:
            raise CommandError(f"There is no training run {options['run']}.") from None
        folder = resolve_adapter_path(run.adapter_path) if run.adapter_path else None
        if (
            run.status != TrainingRun.Status.SUCCEEDED
            or folder is None
            or not (folder / "adapter_config.json").exists()
        ):
            raise CommandError(f"Run {run.pk} has no adapter to evaluate.")
        if options["eval_questions"] < 1:
            raise CommandError("--eval-questions must be at least 1.")
        seed = run.seed if options["seed"] is None else options["seed"]
        questions = evaluation_questions(options["eval_questions"], seed)
        if not questions:
            raise CommandError("No held-out passage to ask about: import a knowledge source (make import-medquad).")
        model, tokenizer = registry.load_base(run.base_model, Path(settings.MEDBOT_MODEL_CACHE))
        peft_model = PeftModel.from_pretrained(model, str(folder))
        result = evaluate(peft_model, tokenizer, questions, self.stdout.write)
        if run.evaluation:
            earlier = json.dumps({k: run.evaluation.get(k) for k in ("base", "adapter", "verdict")})
            run.notes = "\n".join(filter(None, [run.notes, f"Earlier evaluation: {earlier}"]))
        run.evaluation = result
        run.save(update_fields=["evaluation", "notes"])
        self.stdout.write("\n".join(evaluation_lines(result)))
