"""``manage.py import_training_data PATH``: add question/answer pairs from a file as training examples.

Thin on purpose: reading, de-duplicating and saving live in ``training.data``."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from training.data import DataError, import_examples


class Command(BaseCommand):
    help = (
        "Import training examples from a .json list or .jsonl file (question/answer or input/output) or from "
        "MedQuAD XML (a file, or a folder searched recursively). Duplicate questions are skipped; a bad file "
        "changes nothing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Read and count, save nothing.")

    def handle(self, *args: Any, path: Path, dry_run: bool = False, **options: Any) -> None:
        try:
            result = import_examples(path, dry_run=dry_run)
        except DataError as error:
            raise CommandError(f"{error}. Nothing was imported.") from error
        self.stdout.write(self.style.SUCCESS(f"{path}: {result}"))
