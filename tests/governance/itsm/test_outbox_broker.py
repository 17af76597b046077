"""Redis down during outbound sync loses nothing and sends nothing twice: the updates are outbox rows committed with
the changes' moves, the tasks that could not be sent (or that Redis forgot, coming back empty) are sent again by the
beat job's sweep, and the ServiceNow stand-in applies every update once, in order.

The broker is a Redis of the test's own (tests/governance/deployments/test_broker_outage.py's), stopped and started
again; the test calls the sweep itself, as beat would every 10 s."""

import pytest

from governance.changes.services import change_request_update
from governance.itsm.relay import outbox_sweep
from tests.governance.deployments.test_broker_outage import (  # noqa: F401 (fixtures)
    own_broker,
    transaction_db_url,
    worker_on_own_broker,
)
from tests.governance.deployments.world import wait_for
from tests.governance.itsm.outbox_world import all_delivered, keys_of, outbound_world, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def relay_settings(servicenow_connector, settings, monkeypatch):
    worker_env(monkeypatch, settings)  # before the worker starts: it reads them from its environment


def test_redis_down_during_sync_loses_no_update_and_sends_none_twice(
        relay_settings, migration_data, own_broker, worker_on_own_broker, requester, servicenow):  # noqa: F811
    world = outbound_world(requester)
    before = [world.move_through(world.raise_change(f"Before the outage {n}")) for n in range(2)]
    own_broker.stop()  # while the first changes' updates may still be on their way
    # Raised and edited, not submitted: the approvers' notice that a submission queues is sent after commit by
    # delay_on_commit, which raises with Redis down; the outbox's own sending does not.
    during = [world.raise_change(f"During the outage {n}") for n in range(2)]
    for change in during:
        for revision in (1, 2):
            change_request_update(actor=requester, change=change, title=f"{change.title}, revision {revision}")
    assert not all_delivered(during)  # no task could be sent for them
    own_broker.start()  # empty: whatever it held is gone
    changes = [*before, *during]
    wait_for("every update to be delivered", lambda: (outbox_sweep(), all_delivered(changes))[1], timeout=90)
    for change in changes:
        assert len(servicenow.changes_for(change.number)) == 1, change.number
        assert servicenow.applied_keys(change.number) == keys_of(change, "servicenow"), change.number
