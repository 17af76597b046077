"""Roles are groups; each gets the permissions it needs. Later migrations extend this map."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CMDB_MODELS = ["team", "environment", "configurationitem", "relationship"]
CMDB_VIEW = [f"cmdb.view_{m}" for m in CMDB_MODELS]
CMDB_ALL = [f"cmdb.{a}_{m}" for m in CMDB_MODELS for a in ("add", "change", "delete", "view")]

ROLE_PERMISSIONS = {
    "requester": CMDB_VIEW,
    "cab_member": CMDB_VIEW,
    "release_manager": CMDB_VIEW,
    "auditor": [*CMDB_VIEW, "governance.view_apitoken"],
    "admin": [*CMDB_ALL, *(f"governance.{a}_apitoken" for a in ("add", "change", "delete", "view"))],
    "service_account": CMDB_VIEW,
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; create them now so groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("cmdb", "0001_initial"),
        ("governance", "0001_initial"),
    ]
    operations = [migrations.RunPython(create_roles, remove_roles)]
