"""Outbound sync by a real Celery worker against the ServiceNow and Jira Service Management stand-ins: changes appear
there and follow every move in order; a remote that fails three times, then answers, gets each update once; a remote
down for a while gets every update, in order, once it is back. "Once" is the remote's own count: the stand-ins keep
each write applied with the idempotency key it carried.

The worker gets a fast backoff and a short lease through the settings it reads from its environment; the test calls
the beat job's function itself where beat would run it (every 10 s in production)."""

import time
from dataclasses import dataclass

import pytest

from governance.itsm.relay import outbox_sweep
from governance.models import ItsmRecord, OutboxMessage
from tests.governance.deployments.world import wait_for
from tests.governance.itsm.conftest import JIRA_TRANSITIONS
from tests.governance.itsm.outbox_world import all_delivered, outbound_world, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Remote:
    """A stand-in and how to read it: the idempotency keys it applied to a change's record, in order, and the
    records it holds for the change."""

    name: str
    standin: object

    def applied(self, number: str) -> list[str]:
        return self.standin.applied_keys(number)

    def records(self, number: str) -> list[dict]:
        if self.name == "servicenow":
            return self.standin.changes_for(number)
        return self.standin.requests_for(number)


@pytest.fixture(params=["servicenow", "jira"])
def remote(request, settings, monkeypatch) -> Remote:
    request.getfixturevalue(f"{request.param}_connector")  # the file and credentials, before the worker starts
    worker_env(monkeypatch, settings)
    return Remote(request.param, request.getfixturevalue(request.param))


@pytest.fixture
def world(remote, migration_data, requester, celery_worker_process):
    return outbound_world(requester)


def raise_and_move(world, count: int, *, edited: bool) -> list:
    return [world.move_through(world.raise_change(f"Upgrade payments-api, part {n}"), edited=edited)
            for n in range(count)]


def expected_applied(remote: Remote, change) -> list[str]:
    """The updates the remote applies as writes: every one in ServiceNow; in Jira those that move the request."""
    updates = OutboxMessage.objects.filter(change=change, connector=remote.name).order_by("sequence")
    if remote.name == "servicenow":
        return [u.idempotency_key for u in updates]
    return [u.idempotency_key for u in updates if u.event in JIRA_TRANSITIONS]


def assert_each_update_applied_once_in_order(remote: Remote, changes: list) -> None:
    for change in changes:
        records = remote.records(change.number)
        assert len(records) == 1, f"{change.number} has {len(records)} records in {remote.name}"
        assert remote.applied(change.number) == expected_applied(remote, change), change.number
        record = ItsmRecord.objects.get(change=change, connector=remote.name)
        assert record.remote_id and record.remote_number


def test_changes_follow_every_move_in_the_remote_in_order_through_failures_and_an_outage(world, remote):
    """One worker for the three stories, which run one after the other."""
    # Changes appear and follow every move, in order.
    changes = raise_and_move(world, 2, edited=remote.name == "servicenow")
    wait_for("every update to be delivered", lambda: all_delivered(changes), timeout=60)
    assert_each_update_applied_once_in_order(remote, changes)
    for change in changes:
        record = remote.records(change.number)[0]
        if remote.name == "servicenow":
            assert str(record["state"]) == "4" and record["short_description"].endswith("(edited)")
            assert ItsmRecord.objects.get(change=change).remote_id == record["sys_id"]
        else:
            assert record["status"] == "Canceled"

    # A remote failing three times, then answering, gets each update once.
    remote.standin.fail_next(3)
    failing = raise_and_move(world, 1, edited=remote.name == "servicenow")
    wait_for("every update to be delivered", lambda: all_delivered(failing), timeout=60)
    assert_each_update_applied_once_in_order(remote, failing)
    assert OutboxMessage.objects.filter(change=failing[0]).order_by("sequence").first().attempts == 4

    # A remote down for a while gets every update, in order, once it is back.
    remote.standin.down()
    waiting = raise_and_move(world, 2, edited=remote.name == "servicenow")
    time.sleep(3)  # several attempts fail meanwhile
    assert OutboxMessage.objects.filter(change__in=waiting, attempts__gte=2).exists()
    assert not OutboxMessage.objects.filter(change__in=waiting, state__in=["delivered", "failed"]).exists()
    remote.standin.up()
    wait_for("every update to be delivered", lambda: (outbox_sweep(), all_delivered(waiting))[1], timeout=60)
    assert_each_update_applied_once_in_order(remote, [*changes, *failing, *waiting])
