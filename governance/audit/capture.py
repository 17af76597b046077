"""Capture by database trigger: every insert, update and delete of a governed table, whoever makes it.

Triggers see bulk updates and raw SQL too (a Django signal does not), so no view, service or task has to
remember to audit. The governed tables are listed once, here; `install_audit_triggers` (run after every
`migrate`) puts the trigger on each of them and a test checks that every model is either governed or
deliberately left out.
"""

from dataclasses import dataclass

from django.apps import apps
from django.db import connections

from governance.audit.context import COMMENT_PREFIX


@dataclass(frozen=True)
class Governed:
    label: str = ""  # column holding a human label for the row
    ignore: tuple[str, ...] = ()  # columns whose changes are noise (timestamps of use)
    redact: tuple[str, ...] = ()  # columns recorded as changed, never with their value


GOVERNED: dict[str, Governed] = {
    "cmdb.team": Governed(label="name"),
    "cmdb.environment": Governed(label="name"),
    "cmdb.configurationitem": Governed(label="name"),
    "cmdb.relationship": Governed(),
    "governance.apitoken": Governed(label="name", ignore=("last_used_at",)),
    "governance.changerequest": Governed(label="number"),
    "governance.changerequest_affected_cis": Governed(),
    "governance.changestatuschange": Governed(),
    "governance.approval": Governed(),
    "governance.approvalrequirement": Governed(),
    "governance.approvalpolicy": Governed(label="name"),
    "governance.approvalpolicy_environments": Governed(),
    "governance.policyrequirement": Governed(),
    "governance.standardchangetemplate": Governed(label="name"),
    "governance.standardchangetemplate_cis": Governed(),
    "governance.standardchangetemplate_environments": Governed(),
    "governance.cabmeeting": Governed(label="title"),
    "governance.cabmeeting_attendees": Governed(),
    "governance.cabagendaitem": Governed(),
    "governance.freezewindow": Governed(label="name"),
    "governance.freezewindow_environments": Governed(),
    "governance.freezewindow_cis": Governed(),
    "governance.maintenancewindow": Governed(label="name"),
    "governance.maintenancewindow_environments": Governed(),
    "governance.maintenancewindow_cis": Governed(),
    "governance.lockdown": Governed(label="reason"),
    "governance.lockdown_environments": Governed(),
    "governance.lockdown_cis": Governed(),
    "governance.calendarfeed": Governed(label="name", redact=("digest",)),
    "governance.deploymentcheck": Governed(label="decision"),
    "governance.githubreview": Governed(label="state"),
    "governance.apitoken_services": Governed(),
    "governance.apitoken_environments": Governed(),
    "releases.gatepolicy": Governed(),
    "releases.artifact": Governed(label="version"),
    "releases.promotion": Governed(),
    "releases.deployment": Governed(label="number"),
    "releases.scanresult": Governed(label="tool"),
    "releases.trustedkey": Governed(label="name"),
    "releases.deploymentplan": Governed(),
    "releases.planwave": Governed(label="name"),
    "releases.healthcheck": Governed(label="name"),
    "releases.databasemigration": Governed(label="forward_schema_version"),
    # A step's lease is renewed every few seconds while it runs; its claims, attempts and results are recorded.
    "releases.rolloutstep": Governed(label="idempotency_key", ignore=("lease_expires_at",)),
    # Exports are recorded as ledger events when asked for; the bundle's progress ticks are not worth a row each.
    "governance.evidencebundle": Governed(ignore=("progress", "stage")),
    "governance.auditsample": Governed(label="seed"),
    "governance.auditornote": Governed(label="exception_key"),
    # The outbox's delivery bookkeeping (attempts, leases) is the relay's, not a governed decision: what is sent is
    # the change's own moves, which are governed; the remote records, incidents and their suspects are.
    "governance.itsmrecord": Governed(label="remote_number"),
    "governance.incident": Governed(label="number", ignore=("updated_at",)),
    "governance.incident_affected_cis": Governed(),
    "governance.incidentsuspect": Governed(),
    "auth.user": Governed(label="username", ignore=("last_login",), redact=("password",)),
    "auth.group": Governed(label="name"),
    "auth.user_groups": Governed(),
    "auth.group_permissions": Governed(),
    "auth.user_user_permissions": Governed(),
    "guardian.userobjectpermission": Governed(),
    "guardian.groupobjectpermission": Governed(),
}

# Models whose writes are not governed, and why.
NOT_GOVERNED = {
    "governance.auditcapture": "the capture queue of the ledger itself",
    "governance.auditevent": "the ledger itself (append-only by trigger)",
    "governance.auditcheckpoint": "the ledger's signed checkpoints (append-only by trigger)",
    "governance.occurrence": "computed from the freeze and maintenance windows, which are governed",
    "auth.permission": "created by migrations from the code",
    "contenttypes.contenttype": "created by migrations from the code",
    "sessions.session": "login sessions; logins and logouts are recorded as events",
    "admin.logentry": "the admin's own log; the ledger records the writes themselves",
    "governance.outboxmessage": "the delivery queue of the change updates the ledger already holds as the change's "
                                "own writes",
    "governance.webhookreceipt": "signatures of deliveries taken, kept against replay; refusals are ledger events",
}

CAPTURE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION changeboard_audit_capture() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    object_type text := TG_ARGV[0];
    label_column text := TG_ARGV[1];
    ignored text[] := TG_ARGV[2]::text[];
    redacted text[] := TG_ARGV[3]::text[];
    encoded text;
    actor jsonb;
    old_row jsonb;
    new_row jsonb;
    the_row jsonb;
    changes jsonb;
    name text;
BEGIN
    -- The acting identity rides on the statement as a trailing comment; only the tail is searched, so
    -- a bulk statement costs the same per row as a single one.
    encoded := substring(right(current_query(), 4096) from '__PREFIX__([A-Za-z0-9+/=]+) \*/\s*;?\s*$');
    IF encoded IS NULL THEN
        actor := jsonb_build_object('kind', 'database', 'name', session_user::text);
    ELSE
        actor := convert_from(decode(encoded, 'base64'), 'UTF8')::jsonb;
    END IF;
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD) - ignored; END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW) - ignored; END IF;
    the_row := coalesce(new_row, old_row);
    SELECT coalesce(jsonb_object_agg(k, jsonb_build_object('before', old_row -> k, 'after', new_row -> k)), '{}')
      INTO changes
      FROM jsonb_object_keys(the_row) AS k
     WHERE (old_row -> k) IS DISTINCT FROM (new_row -> k);
    IF changes = '{}'::jsonb THEN
        RETURN NULL;  -- an update that changed nothing governed
    END IF;
    FOREACH name IN ARRAY redacted LOOP
        IF changes ? name THEN
            changes := jsonb_set(changes, ARRAY[name], '{"before": "[redacted]", "after": "[redacted]"}');
        END IF;
    END LOOP;
    INSERT INTO governance_auditcapture (
        occurred_at, actor_kind, actor_id, actor_name, token_id, action, object_type, object_id,
        object_label, changes, request_id, client_ip, context)
    VALUES (
        clock_timestamp(), actor ->> 'kind', (actor ->> 'user_id')::bigint, coalesce(actor ->> 'name', ''),
        (actor ->> 'token_id')::bigint,
        CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,
        object_type, coalesce(the_row ->> 'id', ''),
        left(CASE WHEN label_column = '' THEN '' ELSE coalesce(the_row ->> label_column, '') END, 300),
        changes, coalesce(actor ->> 'request_id', ''), coalesce(actor ->> 'client_ip', ''),
        coalesce(actor -> 'context', '{}'));
    RETURN NULL;
END
$fn$;

""".replace("__PREFIX__", COMMENT_PREFIX)


def _array_literal(values: tuple[str, ...]) -> str:
    return "{" + ",".join(values) + "}"


def install_audit_triggers(using: str = "default") -> list[str]:
    """(Re)create the capture function and the trigger of every governed table; returns their tables."""
    tables = []
    with connections[using].cursor() as cursor:
        cursor.execute(CAPTURE_FUNCTION)
        for label, spec in GOVERNED.items():
            table = apps.get_model(label)._meta.db_table
            args = [label, spec.label, _array_literal(spec.ignore), _array_literal(spec.redact)]
            quoted = ", ".join("'" + a.replace("'", "''") + "'" for a in args)
            cursor.execute(
                f'CREATE OR REPLACE TRIGGER changeboard_audit AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
                f"FOR EACH ROW EXECUTE FUNCTION changeboard_audit_capture({quoted})"
            )
            tables.append(table)
    return tables


def install_after_migrate(sender, using="default", **kwargs) -> None:
    install_audit_triggers(using)
