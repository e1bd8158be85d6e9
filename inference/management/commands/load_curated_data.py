from django.core.management import call_command
from django.core.management.base import BaseCommand

from inference.models import Disclaimer, EmergencyRule, FallbackRule
from training.models import TrainingExample

FIXTURES = {
    "fixtures/disclaimers.json": Disclaimer,
    "fixtures/emergency_rules.json": EmergencyRule,
    "fixtures/fallback_rules.json": FallbackRule,
    "fixtures/training_examples.json": TrainingExample,
}


class Command(BaseCommand):
    help = "Load the curated starting data (rules, disclaimer, training examples) into empty tables."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Load even into tables that already have rows.")

    def handle(self, *args, force: bool = False, **options) -> None:
        # Curators edit this data in the admin: never overwrite it on a restart.
        for path, model in FIXTURES.items():
            if model.objects.exists() and not force:
                self.stdout.write(f"{model._meta.verbose_name_plural}: already present, skipped")
                continue
            call_command("loaddata", path, verbosity=0)
            self.stdout.write(f"{model._meta.verbose_name_plural}: loaded {model.objects.count()}")
