"""The knowledge base joins the staff groups: Curators manage sources and passages, Auditors read them.

Done the way ``inference/migrations/0002_groups.py`` does it (permissions created first, since on
a fresh database the post_migrate signal that normally makes them has not run yet), but adding to
the groups rather than resetting them, so the two migrations do not undo each other.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# group name -> {model: actions}, all in the knowledge app
GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "Curators": {
        "knowledgesource": ("add", "change", "delete", "view"),
        "passage": ("add", "change", "delete", "view"),
    },
    "Auditors": {
        "knowledgesource": ("view",),
        "passage": ("view",),
    },
}


def _permissions(apps, grants: dict[str, tuple[str, ...]]) -> list:
    Permission = apps.get_model("auth", "Permission")
    # .get(): a missing permission should stop the migration, not leave a group short.
    return [
        Permission.objects.get(
            content_type__app_label="knowledge", content_type__model=model, codename=f"{action}_{model}"
        )
        for model, actions in grants.items()
        for action in actions
    ]


def grant(apps, schema_editor, groups: dict[str, dict[str, tuple[str, ...]]] = GRANTS) -> None:
    """Give the groups their knowledge permissions (creating a group that is missing). Also
    callable with the global app registry, after a test flushed the database, and by later
    migrations with their own ``groups``."""
    app_config = apps.get_app_config("knowledge")
    # Migration-state app configs have no models module, and create_permissions skips those.
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    try:
        create_permissions(app_config, apps=apps, verbosity=0)
    finally:
        app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    for name, grants in groups.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*_permissions(apps, grants))


def revoke(apps, schema_editor, groups: dict[str, dict[str, tuple[str, ...]]] = GRANTS) -> None:
    Group = apps.get_model("auth", "Group")
    for name, grants in groups.items():
        for group in Group.objects.filter(name=name):
            group.permissions.remove(*_permissions(apps, grants))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("knowledge", "0001_initial"),
        ("inference", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
