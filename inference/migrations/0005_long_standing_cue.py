"""Ship the ``long_standing`` context cue to databases that already hold concepts.

A new database gets it from fixtures/triage_concepts.json through ``load_curated_data``; that command
never writes over a table curators have started editing, so an existing one gets it here, once. A
concept of that name a curator already made is left as it is."""

import json
from pathlib import Path

from django.db import migrations

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "triage_concepts.json"
NAME = "long_standing"


def add_cue(apps, schema_editor) -> None:
    Concept = apps.get_model("inference", "Concept")
    if not Concept.objects.exists() or Concept.objects.filter(name=NAME).exists():
        return  # a new database (load_curated_data brings it) or one that has it
    shipped = next(row for row in json.loads(FIXTURE.read_text(encoding="utf-8")) if row["fields"]["name"] == NAME)
    fields = {key: shipped["fields"][key] for key in ("name", "kind", "synonyms", "ranges", "description", "enabled")}
    Concept.objects.create(**fields)


def remove_cue(apps, schema_editor) -> None:
    apps.get_model("inference", "Concept").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("inference", "0004_curators_edit_concepts")]

    operations = [migrations.RunPython(add_cue, remove_cue)]
