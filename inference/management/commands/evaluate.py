"""manage.py evaluate: score configurations of the answer pipeline on a dataset (see bench/evaluation.py)."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

try:
    from bench import evaluation
except ModuleNotFoundError:  # the production image leaves bench/ out (.dockerignore)
    evaluation = None


class Command(BaseCommand):
    help = (
        "Answer a dataset's questions through the full pipeline under each configuration and write a JSON "
        "report (every answer and the summary) and a Markdown table. Configurations: "
        + ("; ".join(f"{c.name}: {c.description}" for c in evaluation.CONFIGS.values()) if evaluation else "-")
        + "."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dataset", required=True, help="A .jsonl file or a MedQuAD XML folder.")
        parser.add_argument("--limit", type=int, help="Evaluate a random sample of this many questions.")
        parser.add_argument(
            "--config",
            action="append",
            choices=list(evaluation.CONFIGS) if evaluation else None,
            dest="configs",
            help="A configuration to run; repeat for several (default: rules).",
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "bench" / "results",
            help="Folder for eval-<dataset>.json and .md (default: bench/results).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed for the sample (default 0).")
        parser.add_argument("--max-new-tokens", type=int, help="Override MEDBOT_MAX_NEW_TOKENS for this run.")

    def handle(self, *args: Any, **options: Any) -> None:
        if evaluation is None:
            raise CommandError("The evaluation harness (bench/) is not part of this install; run it from a checkout.")
        if options["max_new_tokens"] is not None and options["max_new_tokens"] < 1:
            raise CommandError("--max-new-tokens must be at least 1")
        run = evaluation.EvalOptions(
            dataset=Path(options["dataset"]),
            configs=options["configs"] or ["rules"],
            limit=options["limit"],
            seed=options["seed"],
            max_new_tokens=options["max_new_tokens"],
            progress=options["verbosity"] > 0,
        )
        try:
            report = evaluation.evaluate(run, log=self.stderr.write)
        except (evaluation.DatasetError, ValueError) as error:
            raise CommandError(str(error)) from error
        json_path, markdown_path = evaluation.write_report(report, options["output"])
        self.stdout.write(evaluation.render_markdown(report))
        self.stdout.write(f"Wrote {json_path} and {markdown_path}")
