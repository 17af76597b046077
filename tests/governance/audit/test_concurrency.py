"""Audited writes racing each other and the sealers: every event sealed exactly once, the chain intact."""

import threading

import pytest
from django.db import close_old_connections, connection

from cmdb.models import ConfigurationItem
from governance.audit.ledger import audit_seal, audit_verify
from governance.models import AuditCapture, AuditEvent
from tests.factories import make_ci, make_team

WRITERS = 8
WRITES_EACH = 25


@pytest.mark.django_db(transaction=True)
def test_concurrent_audited_writes_are_all_sealed_once_into_a_valid_chain():
    team = make_team()
    cis = [make_ci(f"svc-{n}", team=team) for n in range(WRITERS)]
    start, writers_done = threading.Barrier(WRITERS + 2), threading.Event()
    failures: list[BaseException] = []

    def write(ci_id: int, n: int) -> None:
        try:
            start.wait()
            for i in range(WRITES_EACH):
                ConfigurationItem.objects.filter(pk=ci_id).update(description=f"writer {n} change {i}")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def seal() -> None:
        try:
            start.wait()
            while not writers_done.is_set():
                audit_seal(wait=False, batch=7)  # small batches: many sealing rounds interleave with writes
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=write, args=(ci.pk, n)) for n, ci in enumerate(cis)]
    sealers = [threading.Thread(target=seal) for _ in range(2)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    writers_done.set()
    for thread in sealers:
        thread.join(timeout=120)
    close_old_connections()
    assert failures == []

    audit_seal()
    assert AuditCapture.objects.count() == 0
    updates = AuditEvent.objects.filter(object_type="cmdb.configurationitem", action="update")
    recorded = sorted(e.changes["description"]["after"] for e in updates)
    expected = sorted(f"writer {n} change {i}" for n in range(WRITERS) for i in range(WRITES_EACH))
    assert recorded == expected  # none lost, none twice
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    report = audit_verify()
    assert report.ok, report.problem
