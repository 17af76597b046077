"""Who may keep the release calendar: release managers and admins edit windows; they and incident
commanders (a new role) declare and lift lockdowns; everyone who reads changes reads the calendar."""

from django.db import migrations

from governance.roles import grant_role_permissions

VIEW = [f"governance.view_{m}" for m in ("freezewindow", "maintenancewindow", "lockdown", "occurrence")]
EDIT = [f"governance.{a}_{m}" for m in ("freezewindow", "maintenancewindow") for a in ("add", "change", "delete")]
ROLE_PERMISSIONS = {
    "requester": VIEW, "cab_member": VIEW, "sre": VIEW, "business_owner": VIEW, "compliance_officer": VIEW,
    "auditor": VIEW, "service_account": VIEW,
    "release_manager": [*VIEW, *EDIT, "governance.declare_lockdown"],
    "admin": [*VIEW, *EDIT, "governance.declare_lockdown"],
    "incident_commander": [*VIEW, "governance.declare_lockdown", "governance.view_changerequest",
                           "cmdb.view_configurationitem", "cmdb.view_team", "cmdb.view_environment",
                           "cmdb.view_relationship"],
}


class Migration(migrations.Migration):
    dependencies = [("governance", "0008_release_calendar")]
    operations = [migrations.RunPython(lambda apps, editor: grant_role_permissions(apps, ROLE_PERMISSIONS),
                                       migrations.RunPython.noop)]
