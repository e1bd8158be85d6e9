"""``manage.py purge_anonymous_conversations [--dry-run]``: run after ``clearsessions``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.ownership import purge_anonymous_conversations


class Command(BaseCommand):
    help = (
        "Delete anonymous conversations whose visitor's session has expired or been cleared: nobody "
        "can open them again. Signed-in users' conversations are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        count = purge_anonymous_conversations(dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {count} anonymous conversation{'' if count == 1 else 's'} with no live session.")
