"""``manage.py build_training_set --from-knowledge N``: training examples made from the knowledge base."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from training.knowledge_set import build_from_knowledge
from training.models import TrainingExample


class Command(BaseCommand):
    help = (
        "Write up to N training examples from the knowledge base: a passage's own question and a rewording, the "
        "passages retrieval returns for it (as serving prompts the model), and the passage's most relevant "
        "sentences as the answer. Topics held out for the evaluation are never used. Re-running adds nothing twice."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--from-knowledge", type=int, required=True, metavar="N", help="Examples to write.")
        parser.add_argument("--seed", type=int, default=0, help="Which passages are sampled (default 0).")
        parser.add_argument("--wordings", type=int, default=1, help="Rewordings per passage's question (default 1).")
        parser.add_argument(
            "--replace", action="store_true", help="Delete the examples built from the knowledge base before."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["from_knowledge"]
        if count < 1:
            raise CommandError("--from-knowledge needs a positive number of examples.")
        if options["wordings"] < 0:
            raise CommandError("--wordings must be 0 or more.")
        if options["replace"]:
            deleted, _ = TrainingExample.objects.filter(origin=TrainingExample.Origin.KNOWLEDGE).delete()
            self.stdout.write(f"Deleted {deleted} examples built earlier.")
        with tqdm(total=count, unit="example", disable=options["no_progress"]) as bar:

            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            report = build_from_knowledge(count, seed=options["seed"], wordings=options["wordings"], progress=progress)
        if report.passages == 0:
            raise CommandError(
                "The knowledge base has no passage to build from (import one: make import-medquad, or "
                "manage.py import_knowledge PATH --source NAME)."
            )
        self.stdout.write(self.style.SUCCESS(report.describe()))
