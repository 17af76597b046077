"""Roles are groups; each gets the permissions it needs. Later migrations extend this map."""

from django.db import migrations

from governance.roles import grant_role_permissions

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
    grant_role_permissions(apps, ROLE_PERMISSIONS)


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
