"""Tamper evidence: whatever is done to the ledger behind Changeboard's back, verification names it."""

import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from governance.audit import signing
from governance.audit.context import Actor, acting_as
from governance.audit.ledger import (
    CANONICAL_COLUMNS,
    GENESIS_HASH,
    audit_checkpoint_create,
    audit_record,
    audit_seal,
    audit_verify,
    event_hash,
)
from governance.core import ed25519
from governance.models import AuditCheckpoint, AuditEvent
from tests.conftest import database_url_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger():
    """Twenty sealed events, a signed checkpoint at #15, five events after it."""
    with acting_as(Actor(kind="system", name="fixture")):
        for n in range(15):
            audit_record("note", object_type="test.thing", object_id=str(n), context={"n": n})
        checkpoint = audit_checkpoint_create()
        for n in range(15, 20):
            audit_record("note", object_type="test.thing", object_id=str(n), context={"n": n})
    audit_seal()
    assert checkpoint.seq == 15
    return checkpoint


def tamper(sql: str, params=()) -> None:
    """Raw SQL with the append-only trigger switched off, as a database administrator could."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER audit_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER audit_append_only")


def texts_of(seq: int) -> list[str]:
    """An event's canonical texts, read the way the sealer and the verifier read them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(CANONICAL_COLUMNS)} FROM governance_auditevent WHERE seq = %s", [seq])
        return list(cursor.fetchone())


def problem() -> str:
    report = audit_verify()
    assert not report.ok
    return report.problem


def test_an_untouched_ledger_verifies_clean(ledger):
    report = audit_verify()
    assert report.ok, report.problem
    assert (report.events, report.head_seq, report.checkpoints) == (20, 20, 1)
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "Audit ledger verified: 20 events up to #20" in out.getvalue()


def test_a_changed_field_is_named(ledger):
    tamper("UPDATE governance_auditevent SET actor_name = 'someone-else' WHERE seq = 7")
    assert problem() == "event #7 was altered: its content no longer matches its hash"


def test_a_changed_json_value_is_named(ledger):
    tamper("""UPDATE governance_auditevent SET context = '{"n": 99}' WHERE seq = 3""")
    assert problem().startswith("event #3 was altered")


def test_a_deleted_event_is_named(ledger):
    tamper("DELETE FROM governance_auditevent WHERE seq = 12")
    assert problem() == "event #12 is missing: the ledger goes from #11 to #13"


def test_a_forged_event_inserted_in_the_middle_is_named(ledger):
    # The forger makes room after #9 and writes an event whose own hash is right for its place.
    tamper("UPDATE governance_auditevent SET seq = seq + 1000 WHERE seq >= 10")
    tamper("UPDATE governance_auditevent SET seq = seq - 999 WHERE seq >= 1000")
    previous = AuditEvent.objects.get(seq=9)
    tamper(
        "INSERT INTO governance_auditevent (seq, sealed_at, prev_hash, hash, occurred_at, actor_kind, actor_id,"
        " actor_name, token_id, action, object_type, object_id, object_label, changes, request_id, client_ip,"
        " context) SELECT 10, sealed_at, %s, %s, occurred_at, actor_kind, actor_id, 'mallory', token_id,"
        " 'approve', object_type, object_id, object_label, changes, request_id, client_ip,"
        ' \'{"forged": true}\' FROM governance_auditevent WHERE seq = 11',
        [previous.hash, "0" * 64],
    )
    tamper("UPDATE governance_auditevent SET hash = %s WHERE seq = 10", [event_hash(previous.hash, 10, texts_of(10))])
    assert problem().startswith("event #11 does not follow event #10")


def test_two_swapped_events_are_named(ledger):
    tamper("UPDATE governance_auditevent SET seq = -5 WHERE seq = 5")
    tamper("UPDATE governance_auditevent SET seq = 5 WHERE seq = 6")
    tamper("UPDATE governance_auditevent SET seq = 6 WHERE seq = -5")
    assert problem().startswith("event #5 does not follow event #4")


def test_a_truncated_tail_after_a_checkpoint_is_named(ledger):
    tamper("DELETE FROM governance_auditevent WHERE seq > 13")
    assert problem().startswith(f"checkpoint {ledger.pk} (event #15")
    assert "the ledger ends at #13: events were removed" in problem()


def test_a_rewritten_history_under_a_checkpoint_is_named(ledger):
    # Rewrite event #2 and re-hash every later event, as a forger with the database could; only the
    # signed checkpoint, whose key is not in the database, gives it away.
    tamper("UPDATE governance_auditevent SET actor_name = 'mallory' WHERE seq = 2")
    prev = AuditEvent.objects.get(seq=1).hash
    for seq in range(2, 21):
        digest = event_hash(prev, seq, texts_of(seq))
        tamper("UPDATE governance_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s", [prev, digest, seq])
        prev = digest
    assert problem().endswith("does not match event #15: the ledger up to it was rewritten")


def test_a_checkpoint_with_a_bad_signature_is_named(ledger):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE governance_auditcheckpoint DISABLE TRIGGER audit_append_only")
        cursor.execute("UPDATE governance_auditcheckpoint SET seq = 14, head_hash = %s",
                       [AuditEvent.objects.get(seq=14).hash])
        cursor.execute("ALTER TABLE governance_auditcheckpoint ENABLE TRIGGER audit_append_only")
    assert "has an invalid signature" in problem()


def test_a_checkpoint_signed_by_another_key_is_not_trusted(ledger):
    stranger = ed25519.parse_private_key(ed25519.generate_private_key_pem()).public_key()
    report = audit_verify(public_keys=[stranger])
    assert "which is not a trusted key" in report.problem


def test_the_command_fails_with_the_first_broken_link(ledger):
    tamper("DELETE FROM governance_auditevent WHERE seq = 4")
    with pytest.raises(CommandError, match=r"AUDIT LEDGER BROKEN: event #4 is missing"):
        call_command("verify_audit", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_on_a_broken_ledger(ledger, tmp_path):
    key_file = tmp_path / "published.pub"
    key_file.write_text(ed25519.public_key_pem(signing.public_key()))
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url_of(connection.settings_dict)}
    command = [sys.executable, "manage.py", "verify_audit", "--public-key", str(key_file)]
    clean = subprocess.run(command, env={**_environ(), **env}, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    tamper("UPDATE governance_auditevent SET action = 'approve' WHERE seq = 9")
    broken = subprocess.run(command, env={**_environ(), **env}, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert broken.returncode != 0
    assert "event #9 was altered" in broken.stderr


def _environ() -> dict:
    import os

    return dict(os.environ)


def test_the_orm_refuses_to_change_or_remove_events(ledger):
    event = AuditEvent.objects.get(seq=1)
    event.action = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(seq=1).update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    with pytest.raises(PermissionError):
        AuditCheckpoint.objects.all().delete()


@pytest.mark.parametrize("statement", [
    "UPDATE governance_auditevent SET action = 'x' WHERE seq = 1",
    "DELETE FROM governance_auditevent WHERE seq = 1",
    "UPDATE governance_auditcheckpoint SET seq = 1",
    "DELETE FROM governance_auditcheckpoint",
    "TRUNCATE governance_auditevent",
    "TRUNCATE governance_auditcheckpoint",
])
def test_the_database_refuses_to_change_or_remove_ledger_rows(ledger, statement):
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)


def test_the_first_event_links_to_the_genesis_hash(ledger):
    assert AuditEvent.objects.get(seq=1).prev_hash == GENESIS_HASH


def test_the_checkpoint_command_signs_the_head_on_demand(ledger):
    audit_record("note", object_type="test.thing", object_id="late")
    out = StringIO()
    call_command("audit_checkpoint", stdout=out)
    assert out.getvalue().startswith("Checkpoint ") and "event #21" in out.getvalue()
    assert AuditCheckpoint.objects.order_by("-seq").first().seq == 21
    assert audit_verify().ok
