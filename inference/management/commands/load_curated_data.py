from django.core.management import call_command
from django.core.management.base import BaseCommand

from inference.models import Concept, Disclaimer, EmergencyRule, FallbackRule
from knowledge.models import Alias
from training.models import TrainingExample

FIXTURES = {
    "fixtures/disclaimers.json": Disclaimer,
    "fixtures/triage_concepts.json": Concept,
    "fixtures/emergency_rules.json": EmergencyRule,
    "fixtures/fallback_rules.json": FallbackRule,
    "fixtures/training_examples.json": TrainingExample,
    "fixtures/aliases.json": Alias,
}


class Command(BaseCommand):
    help = "Load the curated starting data (rules, disclaimer, training examples, aliases) into empty tables."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Load even into tables that already have rows.")

    def handle(self, *args, force: bool = False, **options) -> None:
        # Curators edit this data in the admin: never overwrite it on a restart.
        for path, model in FIXTURES.items():
            if model is EmergencyRule and not force and pre_concept_rules():
                # Rules from before concepts (regular expressions only): replace them with the shipped
                # concept rules once, or triage would keep the old rules and never use the concepts.
                call_command("loaddata", path, verbosity=0)
                self.stdout.write(f"emergency rules: upgraded to concept rules, {model.objects.count()} now")
                continue
            if model.objects.exists() and not force:
                self.stdout.write(f"{model._meta.verbose_name_plural}: already present, skipped")
                continue
            call_command("loaddata", path, verbosity=0)
            self.stdout.write(f"{model._meta.verbose_name_plural}: loaded {model.objects.count()}")


def pre_concept_rules() -> bool:
    """True when there are emergency rules and none of them has a concept condition."""
    return EmergencyRule.objects.exists() and not EmergencyRule.objects.exclude(condition="").exists()
