"""manage.py evaluate: the knowledge split evaluation on MedQuAD, or our labelled questions.

manage.py evaluate --knowledge-split ../shared/data/medquad --config rules --config extract
manage.py evaluate --knowledge-split ../shared/data/medquad --only-retrieval
manage.py evaluate --dataset bench/data/labelled_questions.jsonl --config rules
"""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import evaluation, knowledge_split
from knowledge.importers import ImportProblem


class Command(BaseCommand):
    help = (
        "Score configurations of the answer pipeline: --knowledge-split MEDQUAD splits MedQuAD by document "
        "into knowledge and held-out questions asked in new words; --dataset FILE.jsonl answers our labelled "
        "questions. Configurations: "
        + "; ".join(f"{c.name}: {c.description}" for c in knowledge_split.CONFIGS.values())
        + ". Writes JSON and Markdown to --output."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--knowledge-split", type=Path, metavar="MEDQUAD", help="A MedQuAD XML folder.")
        what.add_argument("--dataset", type=Path, help="A labelled .jsonl file (bench/data/labelled_questions.jsonl).")
        parser.add_argument(
            "--config",
            action="append",
            choices=list(knowledge_split.CONFIGS),
            dest="configs",
            help="A configuration to run; repeat for several (default: rules and extract; rules for --dataset).",
        )
        parser.add_argument("--heldout-share", type=float, default=0.1, help="Share of documents held out (0.1).")
        parser.add_argument("--seed", type=int, default=0, help="Seed for the split, wording and sample (0).")
        parser.add_argument(
            "--limit", type=int, default=40, help="Questions per group for the model configurations (40)."
        )
        parser.add_argument(
            "--only-retrieval",
            action="store_true",
            help="Search only: answered, top-1 focus match and search latency, in seconds.",
        )
        parser.add_argument("--max-new-tokens", type=int, help="Override MEDBOT_MAX_NEW_TOKENS for this run.")
        parser.add_argument(
            "--curated-titles-only",
            action="store_true",
            help=(
                "Count only a curated entry's title as a topic it covers (default: its trigger phrases "
                "too, which its curators declared it answers: 'syncope' for the fainting entry)."
            ),
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "bench" / "results",
            help="Folder for the results (default: bench/results, where they are gitignored).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_new_tokens"] is not None and options["max_new_tokens"] < 1:
            raise CommandError("--max-new-tokens must be at least 1")
        progress = options["verbosity"] > 0
        try:
            if options["dataset"] is not None:
                report = evaluation.evaluate(
                    evaluation.EvalOptions(
                        dataset=Path(options["dataset"]),
                        configs=options["configs"] or ["rules"],
                        max_new_tokens=options["max_new_tokens"],
                        progress=progress,
                    ),
                    log=self.stderr.write,
                )
                paths = evaluation.write_report(report, Path(options["output"]))
                self.stdout.write(evaluation.render_markdown(report))
            else:
                split = knowledge_split.evaluate_split(
                    knowledge_split.SplitOptions(
                        medquad=Path(options["knowledge_split"]),
                        configs=options["configs"] or ["rules", "extract"],
                        triggers_cover=not options["curated_titles_only"],
                        heldout_share=options["heldout_share"],
                        seed=options["seed"],
                        limit=options["limit"],
                        only_retrieval=options["only_retrieval"],
                        max_new_tokens=options["max_new_tokens"],
                        progress=progress,
                    ),
                    log=self.stderr.write,
                )
                paths = knowledge_split.write_report(split, Path(options["output"]))
                self.stdout.write(knowledge_split.print_table(split))
        except (evaluation.DatasetError, ImportProblem, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Wrote {paths[0]} and {paths[1]}")
