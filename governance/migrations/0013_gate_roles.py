"""Pipelines ask the gate; everyone who follows changes reads its log."""

from django.db import migrations

from governance.roles import grant_role_permissions

READ = ["governance.view_deploymentcheck"]
ROLE_PERMISSIONS = {
    **{role: READ for role in ("requester", "cab_member", "sre", "business_owner", "compliance_officer",
                               "release_manager", "auditor", "incident_commander")},
    "service_account": [*READ, "governance.add_deploymentcheck"],
    "admin": [*READ, "governance.add_deploymentcheck"],
}


class Migration(migrations.Migration):
    dependencies = [("governance", "0012_deployment_checks")]
    operations = [migrations.RunPython(lambda apps, editor: grant_role_permissions(apps, ROLE_PERMISSIONS),
                                       migrations.RunPython.noop)]
