from django.core.management.base import BaseCommand

from inference.audit import purge


class Command(BaseCommand):
    help = "Delete audit log rows older than the retention period."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS", help="Retention in days (>= 0).")

    def handle(self, *args, older_than: int, **options) -> None:
        if older_than < 0:
            self.stderr.write("--older-than must be 0 or more days")
            raise SystemExit(2)
        deleted = purge(older_than)
        self.stdout.write(f"Deleted {deleted} audit log rows older than {older_than} days.")
