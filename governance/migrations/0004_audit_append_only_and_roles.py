"""The database refuses to change or remove ledger rows; auditors and admins may read and export them.

TRUNCATE stays possible for the tables' owner (the test suite empties every table between tests); the
application never truncates, and its role in production need not own the tables.
"""

from django.db import migrations

from governance.roles import grant_role_permissions

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION changeboard_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION changeboard_audit_append_only();
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON governance_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION changeboard_audit_append_only();
"""
DROP_APPEND_ONLY = """
DROP TRIGGER audit_append_only ON governance_auditevent;
DROP TRIGGER audit_append_only ON governance_auditcheckpoint;
DROP FUNCTION changeboard_audit_append_only();
"""

READ_LEDGER = ["governance.view_auditevent", "governance.view_auditcheckpoint", "governance.export_auditevent",
               "governance.add_auditcheckpoint"]
ROLE_PERMISSIONS = {"auditor": READ_LEDGER, "admin": READ_LEDGER}


def grant(apps, schema_editor):
    grant_role_permissions(apps, ROLE_PERMISSIONS)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    codenames = [name.split(".")[1] for name in READ_LEDGER]
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.remove(*Permission.objects.filter(codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_audit_ledger")]
    operations = [
        migrations.RunSQL(APPEND_ONLY, DROP_APPEND_ONLY),
        migrations.RunPython(grant, revoke),
    ]
