"""Pipelines (service accounts) and admins register artifacts, scans and promotions; every role reads them."""

from django.db import migrations

from governance.roles import grant_role_permissions

READ = [f"releases.view_{m}" for m in ("artifact", "promotion", "scanresult", "trustedkey")]
WRITE = [f"releases.add_{m}" for m in ("artifact", "promotion", "scanresult")]
ROLE_PERMISSIONS = {
    **{role: READ for role in ("requester", "cab_member", "sre", "business_owner", "compliance_officer",
                               "release_manager", "auditor", "incident_commander")},
    "service_account": [*READ, *WRITE],
    "admin": [*READ, *WRITE, "releases.add_trustedkey", "releases.change_trustedkey"],
}


class Migration(migrations.Migration):
    dependencies = [("governance", "0010_calendar_feeds"), ("releases", "0001_initial")]
    operations = [migrations.RunPython(lambda apps, editor: grant_role_permissions(apps, ROLE_PERMISSIONS),
                                       migrations.RunPython.noop)]
