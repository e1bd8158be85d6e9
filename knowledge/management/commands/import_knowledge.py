"""``manage.py import_knowledge PATH --source NAME``: passages from MedQuAD XML, JSONL or leaflets.

Thin on purpose: reading, matching and saving live in ``knowledge.importers``."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge.importers import ImportProblem, import_knowledge


class Command(BaseCommand):
    help = (
        "Import reviewed passages into a knowledge source (created if missing) from a file or a folder searched "
        "recursively: MedQuAD XML (.xml), JSONL (.jsonl: text/answer, title/question, optional focus, synonyms, "
        "question_type, url, id) and Markdown or plain-text leaflets (.md, .markdown, .txt). Re-importing updates "
        "passages in place. A file that cannot be read is listed with the reason and nothing of it is written; the "
        "others still import, and the exit status is 1. For MedQuAD: --source medquad --publisher "
        '"U.S. National Institutes of Health (via MedQuAD)" --url https://github.com/abachaa/MedQuAD '
        '--licence "CC BY 4.0".'
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path, help="A file, or a folder searched recursively.")
        parser.add_argument("--source", required=True, help="The knowledge source's name (created if missing).")
        parser.add_argument("--publisher", default="", help="Who wrote and reviewed it, as cited (e.g. NIH).")
        parser.add_argument("--url", default="", help="Where the source can be read.")
        parser.add_argument("--licence", default="", help="e.g. 'CC BY 4.0' (MedQuAD's licence).")
        parser.add_argument(
            "--delete-missing",
            action="store_true",
            help="Delete this source's passages that are in none of the files (only when every file was read).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, path: Path, source: str, no_progress: bool = False, **options: Any) -> None:
        bar: tqdm | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                # To stderr, so stdout keeps only the summary; hidden for short imports and non-terminals.
                bar = tqdm(total=total, unit="file", desc="Reading", file=sys.stderr, disable=no_progress or None)
            bar.update(1)

        try:
            report = import_knowledge(
                path,
                source,
                publisher=options["publisher"],
                url=options["url"],
                licence=options["licence"],
                delete_missing=options["delete_missing"],
                progress=progress,
            )
        except (ImportProblem, ValueError) as problem:
            raise CommandError(f"{problem}. Nothing was imported.") from problem
        finally:
            if bar is not None:
                bar.close()
        for problem_path, reason in report.problems:
            self.stderr.write(f"Not imported: {problem_path}: {reason}")
        if report.problems:
            # The rest was imported; the status says that not everything was.
            self.stdout.write(self.style.WARNING(str(report)))
            raise CommandError(f"{len(report.problems)} files not imported (listed above)", returncode=1)
        self.stdout.write(self.style.SUCCESS(str(report)))
