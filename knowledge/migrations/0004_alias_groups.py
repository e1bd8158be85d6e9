"""Curators manage aliases as they manage passages; Auditors read them (see 0002_groups)."""

import importlib

from django.db import migrations

groups = importlib.import_module("knowledge.migrations.0002_groups")

GRANTS = {"Curators": {"alias": ("add", "change", "delete", "view")}, "Auditors": {"alias": ("view",)}}


def grant(apps, schema_editor) -> None:
    groups.grant(apps, schema_editor, GRANTS)


def revoke(apps, schema_editor) -> None:
    groups.revoke(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0003_alias"), ("knowledge", "0002_groups")]

    operations = [migrations.RunPython(grant, revoke)]
