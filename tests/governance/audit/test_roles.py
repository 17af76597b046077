"""The ledger under a database account: the app's role, made as production makes it, adds to the ledger and
seals it, and cannot rewrite, remove or empty it; nor can the tables' owner, but through DDL."""

import os
import subprocess
import sys
import uuid
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from governance.audit.context import Actor, acting_as
from governance.audit.ledger import audit_checkpoint_create, audit_record, audit_verify
from governance.models import AuditCapture, AuditCheckpoint, AuditEvent
from tests.conftest import database_url_of
from tests.factories import make_ci

pytestmark = pytest.mark.django_db(transaction=True)  # the app's role sees only what is committed

PASSWORD = "app-role-test-password"
LEDGER_WRITES = [
    "UPDATE governance_auditevent SET action = 'forged'",
    "DELETE FROM governance_auditevent",
    "TRUNCATE governance_auditevent",
    "UPDATE governance_auditcheckpoint SET signature = 'forged'",
    "DELETE FROM governance_auditcheckpoint",
    "TRUNCATE governance_auditcheckpoint",
]
CAPTURE_WRITES = [
    "UPDATE governance_auditcapture SET action = 'forged'",
    "DELETE FROM governance_auditcapture",
    "DELETE FROM governance_auditcapture WHERE object_label = 'pending'",
    "TRUNCATE governance_auditcapture",
]


@pytest.fixture
def app_role(monkeypatch):
    """A role of this test's own (roles are shared by every database of the server), made by the command
    production's migrate step runs."""
    role = f"cb_app_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("DATABASE_APP_PASSWORD", PASSWORD)
    call_command("database_app_role", role, stdout=StringIO())
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')  # its grants and default privileges here
        cursor.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def as_app(app_role):
    """A connection as the app's role; each statement commits or fails on its own."""
    with psycopg.connect(**_connect_args(app_role), autocommit=True) as conn:
        yield conn


@pytest.fixture
def ledger():
    """Sealed events under a signed checkpoint, and captures awaiting the sealer: a row write (JSON changes,
    null ids) and an explicit event with context."""
    make_ci("sealed-ci")
    audit_checkpoint_create()
    with acting_as(Actor(kind="user", user_id=7, name="alice", request_id="r-1", context={"via": "test"})):
        make_ci("pending-ci", description="line one\nline two, \"quoted\" and \\ escaped")
        audit_record("note", object_type="test.thing", object_id="1", object_label="pending", changes={"n": [1, None]})
    return {"events": AuditEvent.objects.count(), "checkpoints": AuditCheckpoint.objects.count(),
            "captures": AuditCapture.objects.count()}


def _connect_args(role: str) -> dict:
    database = connection.settings_dict
    return {"host": database["HOST"] or None, "port": database["PORT"] or None, "dbname": database["NAME"],
            "user": role, "password": PASSWORD}


def assert_intact(ledger: dict) -> None:
    assert AuditEvent.objects.count() == ledger["events"]
    assert AuditCheckpoint.objects.count() == ledger["checkpoints"]
    assert AuditCapture.objects.count() == ledger["captures"]
    report = audit_verify()
    assert report.ok, report.problem


def test_the_app_role_cannot_update_delete_or_truncate_ledger_or_capture_rows(as_app, ledger):
    # Privileges are the first line: the role is not even granted these (the triggers are the second).
    for table in ("governance_auditevent", "governance_auditcheckpoint"):
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            held = as_app.execute("SELECT has_table_privilege(%s, %s)", [table, privilege]).fetchone()[0]
            assert held is False, f"the app's role holds {privilege} on {table}"
    for privilege in ("UPDATE", "TRUNCATE"):
        held = as_app.execute("SELECT has_table_privilege('governance_auditcapture', %s)", [privilege]).fetchone()[0]
        assert held is False, f"the app's role holds {privilege} on the capture queue"
    for statement in LEDGER_WRITES + CAPTURE_WRITES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_app.execute(statement)
            pytest.fail(f"the app's role was allowed: {statement}")
    assert_intact(ledger)


def test_the_app_role_cannot_delete_a_capture_that_is_not_sealed_although_it_holds_delete(as_app, app_role, ledger):
    # The privilege is there, for the sealer: what refuses is the queue's trigger.
    assert as_app.execute("SELECT has_table_privilege('governance_auditcapture', 'DELETE')").fetchone()[0]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not sealed into the ledger"):
        as_app.execute("DELETE FROM governance_auditcapture WHERE object_label = 'pending'")
    assert_intact(ledger)


def test_the_owner_is_refused_by_the_triggers_too(ledger):
    """The suite connects as the tables' owner (a superuser, even): privileges do not bind it, triggers do."""
    for statement in LEDGER_WRITES + CAPTURE_WRITES:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
            pytest.fail(f"the owner was allowed: {statement}")
    assert_intact(ledger)


def test_the_sealer_running_as_the_app_role_moves_the_captures_into_the_ledger(app_role, ledger):
    pending = list(AuditCapture.objects.values_list("action", "object_label"))
    app_database = {**connection.settings_dict, "USER": app_role, "PASSWORD": PASSWORD}
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url_of(app_database)}
    done = subprocess.run([sys.executable, "manage.py", "audit_checkpoint"], env=env, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not AuditCapture.objects.exists()
    newest = AuditEvent.objects.order_by("-seq")[:len(pending)]
    assert sorted(e[0:2] for e in newest.values_list("action", "object_label")) == sorted(pending)
    assert AuditEvent.objects.count() == ledger["events"] + ledger["captures"]
    assert AuditCheckpoint.objects.latest().seq == ledger["events"] + ledger["captures"]
    assert audit_verify().ok


def test_the_app_role_owns_nothing_may_truncate_nothing_and_gets_tables_added_later(as_app, app_role):
    owned = as_app.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)")
    assert owned.fetchone()[0] == 0
    truncatable = as_app.execute(
        "SELECT array_agg(relname) FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " AND relkind = 'r' AND has_table_privilege(oid, 'TRUNCATE')").fetchone()[0]
    assert truncatable is None
    with connection.cursor() as cursor:  # as the next migrate would, after the command ran
        cursor.execute("CREATE TABLE later_table (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)")
    try:
        as_app.execute("INSERT INTO later_table DEFAULT VALUES")
        assert as_app.execute("SELECT count(*) FROM later_table").fetchone()[0] == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE later_table")


def test_the_command_refuses_to_make_the_owner_the_app_role():
    with pytest.raises(CommandError, match="owns the tables"):
        call_command("database_app_role", connection.settings_dict["USER"], stdout=StringIO())


def test_the_suites_flush_empties_the_ledger_and_puts_its_guards_back(ledger):
    call_command("flush", interactive=False, verbosity=0, reset_sequences=False)
    assert not AuditEvent.objects.exists() and not AuditCheckpoint.objects.exists()
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("TRUNCATE governance_auditevent")
