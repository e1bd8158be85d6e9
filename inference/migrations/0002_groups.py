"""The two staff groups MedBot is run with: Curators steer the answers, Auditors read the record.

Permissions are normally created by a post_migrate signal, after every migration has run, so on a
fresh database they do not exist yet when this runs: ``create_permissions`` is called first for the
apps involved. Each group gets exactly the permissions below (a group of the same name made by
hand is brought back to this set), so "who may do what" is written down in one place.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# group name -> {(app_label, model): actions}
GROUPS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "Curators": {
        ("inference", "fallbackrule"): ("add", "change", "delete", "view"),
        ("inference", "emergencyrule"): ("add", "change", "delete", "view"),
        ("inference", "disclaimer"): ("add", "change", "delete", "view"),
        ("training", "trainingexample"): ("add", "change", "delete", "view"),
        # "change" is what activating (or rolling back to) a run needs; the run itself stays read-only.
        ("training", "trainingrun"): ("change", "view"),
        # "change" is what promoting a corrected answer needs; the feedback itself stays read-only.
        ("chat", "feedback"): ("change", "view"),
    },
    "Auditors": {
        ("inference", "auditlog"): ("view",),
        ("chat", "conversation"): ("view",),
        ("chat", "message"): ("view",),
        ("chat", "feedback"): ("view",),
    },
}


def make_groups(apps, schema_editor) -> None:
    """Create (or reset) the groups. Also callable with the global app registry, which tests whose
    database was flushed (live-server tests) use to get the groups back."""
    for label in sorted({app_label for grants in GROUPS.values() for app_label, _ in grants}):
        app_config = apps.get_app_config(label)
        # Migration-state app configs have no models module, and create_permissions skips those.
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in GROUPS.items():
        permissions = []
        for (app_label, model), actions in grants.items():
            for action in actions:
                # .get(): a missing permission should stop the migration, not leave a group short.
                permissions.append(
                    Permission.objects.get(
                        content_type__app_label=app_label,
                        content_type__model=model,
                        codename=f"{action}_{model}",
                    )
                )
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def remove_groups(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inference", "0001_initial"),
        ("training", "0002_trainingrun_config"),
        ("chat", "0001_initial"),
    ]

    operations = [migrations.RunPython(make_groups, remove_groups)]
