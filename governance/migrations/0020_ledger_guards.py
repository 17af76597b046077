"""The ledger and its capture queue refuse TRUNCATE, and a capture leaves the queue only into the ledger.

Triggers fire for every role, the tables' owner and superusers included, so they hold whoever connects;
the app's own role (`manage.py database_app_role`) also lacks the privileges, as a second line. Only the
owner can lift them, by DDL (`ALTER TABLE ... DISABLE TRIGGER`), which the test suite's flush does
(tests/ledger_guards.py). Supersedes 0004's note that the owner may truncate the ledger.

A capture may be deleted only once it is sealed: every row a DELETE removes from the queue must equal,
field by field, one of the events the ledger's head gained for them (as many as were removed), which
is what `governance.audit.ledger.audit_seal` does in one transaction. No setting or role switches this
off, so whatever the running app can do, it cannot make a captured event vanish unsealed.
"""

from django.db import migrations

GUARDS = """
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION changeboard_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON governance_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION changeboard_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON governance_auditcapture
    FOR EACH STATEMENT EXECUTE FUNCTION changeboard_audit_append_only();
CREATE TRIGGER audit_append_only BEFORE UPDATE ON governance_auditcapture
    FOR EACH ROW EXECUTE FUNCTION changeboard_audit_append_only();

CREATE FUNCTION changeboard_audit_capture_sealed_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    removed_count bigint;
BEGIN
    -- The sealer appends its events, then deletes their captures: they are the ledger's newest events,
    -- read backwards along the primary key whatever the table's statistics say.
    SELECT count(*) INTO removed_count FROM removed;
    IF EXISTS (
        -- the fields a capture and its event share (governance.audit.ledger.EVENT_FIELDS)
        SELECT occurred_at, actor_kind, actor_id, actor_name, token_id, action, object_type, object_id,
               object_label, changes, request_id, client_ip, context
          FROM removed
        EXCEPT ALL
        SELECT occurred_at, actor_kind, actor_id, actor_name, token_id, action, object_type, object_id,
               object_label, changes, request_id, client_ip, context
          FROM (SELECT * FROM governance_auditevent ORDER BY seq DESC LIMIT removed_count) AS newest
    ) THEN
        RAISE EXCEPTION 'the audit capture queue is append-only: DELETE on % refused for events not sealed into the ledger',
            TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER audit_sealed_only AFTER DELETE ON governance_auditcapture
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION changeboard_audit_capture_sealed_only();
"""

DROP_GUARDS = """
DROP TRIGGER audit_sealed_only ON governance_auditcapture;
DROP FUNCTION changeboard_audit_capture_sealed_only();
DROP TRIGGER audit_append_only ON governance_auditcapture;
DROP TRIGGER audit_no_truncate ON governance_auditcapture;
DROP TRIGGER audit_no_truncate ON governance_auditcheckpoint;
DROP TRIGGER audit_no_truncate ON governance_auditevent;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0019_standard_change_scope'),
    ]

    operations = [
        migrations.RunSQL(GUARDS, DROP_GUARDS),
    ]
