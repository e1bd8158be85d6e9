"""Curators edit triage concepts as they edit red-flag rules (add, change, delete, view)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ACTIONS = ("add", "change", "delete", "view")


def grant(apps, schema_editor) -> None:
    app_config = apps.get_app_config("inference")
    # Permissions are made by post_migrate, after every migration; make them now (see 0002_groups).
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    try:
        create_permissions(app_config, apps=apps, verbosity=0)
    finally:
        app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    curators, _ = Group.objects.get_or_create(name="Curators")
    for action in ACTIONS:
        curators.permissions.add(
            Permission.objects.get(
                content_type__app_label="inference", content_type__model="concept", codename=f"{action}_concept"
            )
        )


def revoke(apps, schema_editor) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    curators = Group.objects.filter(name="Curators").first()
    if curators is not None:
        curators.permissions.remove(*Permission.objects.filter(content_type__model="concept"))


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0003_triage_concepts_and_levels"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
