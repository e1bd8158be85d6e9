"""manage.py evaluate: the knowledge split evaluation on MedQuAD, or our labelled questions.

manage.py evaluate --knowledge-split ../shared/data/medquad --config rules --config extract
manage.py evaluate --knowledge-split ../shared/data/medquad --only-retrieval
manage.py evaluate --knowledge-split ../shared/data/medquad --only-retrieval --config extract --seeds 1-60
manage.py evaluate --dataset bench/data/labelled_questions.jsonl --config rules
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import evaluation, knowledge_split, split_seeds
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
            "--seeds",
            metavar="1-60",
            help=(
                "Run the knowledge split once per seed (ranges and lists: 1-60, 1,2,5) and report each "
                "acceptance bar over them: pooled, mean with a 95%% interval, lowest, seeds failing."
            ),
        )
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
            elif options["seeds"]:
                self._many_seeds(split_seeds.parse_seeds(options["seeds"]), options)
                return
            else:
                split = knowledge_split.evaluate_split(
                    self._split_options(options, options["seed"], progress), log=self.stderr.write
                )
                paths = knowledge_split.write_report(split, Path(options["output"]))
                self.stdout.write(knowledge_split.print_table(split))
        except (evaluation.DatasetError, ImportProblem, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Wrote {paths[0]} and {paths[1]}")

    @staticmethod
    def _split_options(options: dict[str, Any], seed: int, progress: bool) -> knowledge_split.SplitOptions:
        return knowledge_split.SplitOptions(
            medquad=Path(options["knowledge_split"]),
            configs=options["configs"] or ["rules", "extract"],
            triggers_cover=not options["curated_titles_only"],
            heldout_share=options["heldout_share"],
            seed=seed,
            limit=options["limit"],
            only_retrieval=options["only_retrieval"],
            max_new_tokens=options["max_new_tokens"],
            progress=progress,
        )

    def _many_seeds(self, seeds: list[int], options: dict[str, Any]) -> None:
        """Each seed's report to OUTPUT/seed-N/, then the bars over all of them to OUTPUT/knowledge-split-seeds.json."""
        output = Path(options["output"])
        reports = []
        for number, seed in enumerate(seeds, start=1):
            self.stderr.write(f"seed {seed} ({number} of {len(seeds)})")
            report = knowledge_split.evaluate_split(self._split_options(options, seed, False), log=self.stderr.write)
            knowledge_split.write_report(report, output / f"seed-{seed}")
            reports.append(knowledge_split.SplitReport(report.meta, report.outcomes, []))  # rows stay on disk
        summary = split_seeds.summarise_seeds(reports)
        output.mkdir(parents=True, exist_ok=True)
        path = output / "knowledge-split-seeds.json"
        path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        for line in split_seeds.render_seeds(summary):
            self.stdout.write(line)
        self.stdout.write(f"Wrote {path} and one folder per seed")
