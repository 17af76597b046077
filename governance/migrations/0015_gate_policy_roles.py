"""Everyone who follows changes reads the gate policies; administrators set them. Release managers and
auditors read the answers sent to GitHub."""

from django.db import migrations

from governance.roles import grant_role_permissions

READ = ["releases.view_gatepolicy"]
ROLE_PERMISSIONS = {
    **{role: READ for role in ("requester", "cab_member", "sre", "business_owner", "compliance_officer",
                               "incident_commander", "service_account")},
    "release_manager": [*READ, "governance.view_githubreview"],
    "auditor": [*READ, "governance.view_githubreview"],
    "admin": [*READ, "releases.add_gatepolicy", "releases.change_gatepolicy", "releases.delete_gatepolicy",
              "governance.view_githubreview"],
}


class Migration(migrations.Migration):
    dependencies = [("governance", "0014_gate_scopes_pins_github"), ("releases", "0003_gate_policies")]
    operations = [migrations.RunPython(lambda apps, editor: grant_role_permissions(apps, ROLE_PERMISSIONS),
                                       migrations.RunPython.noop)]
