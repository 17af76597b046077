"""A change's updates go to ServiceNow as a batch: the record is read once, before the batch's first write (not at
all when none of the batch was ever sent and the record is known); the updates a worker applied before it died (and
never recorded) are found applied and not sent again, however many of the batch they were; a failure in the middle
records the ones before it as delivered, the failed one for its retry and gives back the ones after it untried."""

import pytest

from governance.changes.services import change_request_update
from governance.itsm.connectors import connector_client
from governance.itsm.relay import deliver_change
from governance.models import ChangeRequest, OutboxMessage, OutboxState
from tests.governance.itsm.outbox_world import keys_of, outbound_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(servicenow_connector, settings, requester):
    settings.ITSM_RETRY_BASE_MS = 0  # retries due at once: the test calls the relay itself
    return outbound_world(requester)


def updates(change: ChangeRequest) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(change=change).order_by("sequence"))


def test_a_batch_reads_the_record_once_and_skips_what_a_dead_worker_applied(world, servicenow, servicenow_connector):
    change = world.move_through(world.raise_change("Upgrade payments-api"))
    queued = updates(change)
    assert len(queued) >= 4
    client = connector_client(servicenow_connector)
    # A worker applied the first three and died before recording them: its batch is sent again, whole.
    assert all(result.ok for result in client.deliver_all(queued[:3], None))
    del servicenow.requests[:]
    again = list(client.deliver_all(queued, None))
    assert all(result.ok for result in again) and len(again) == len(queued)
    assert servicenow.applied_keys(change.number) == keys_of(change, "servicenow")
    assert [method for method, _ in servicenow.requests] == ["GET"] + ["PATCH"] * (len(queued) - 3)
    assert "already has update" in again[2].detail


def test_a_failure_mid_batch_records_those_before_it_and_gives_back_those_after_it(world, servicenow):
    change = world.move_through(world.raise_change("Upgrade payments-api"))
    # The lookup (GET) and the create (POST) succeed, the second update's PATCH fails: the rest of the batch waits.
    original = servicenow.route

    def route(method, path, query, body, headers, raw):
        if method == "POST":
            servicenow.fail_next(1)
        return original(method, path, query, body, headers, raw)

    servicenow.route = route
    assert deliver_change("servicenow", change.pk, owner="test") == 1
    first, failed, *after = updates(change)
    assert first.state == OutboxState.DELIVERED and first.attempts == 1
    assert failed.state == OutboxState.PENDING and failed.attempts == 1 and "500" in failed.last_error
    assert all(u.state == OutboxState.PENDING and u.attempts == 0 and not u.lease_owner for u in after)
    servicenow.route = original
    assert deliver_change("servicenow", change.pk, owner="test") == len(after) + 1
    assert servicenow.applied_keys(change.number) == keys_of(change, "servicenow")


def test_a_batch_never_sent_writes_to_the_known_record_without_reading_it(world, servicenow):
    change = world.raise_change("Upgrade payments-api")
    deliver_change("servicenow", change.pk, owner="test")  # the lookup, the create: the record is known now
    change = change_request_update(actor=world.requester, change=change, title="Upgrade payments-api to 4.2")
    servicenow.requests.clear()
    assert deliver_change("servicenow", change.pk, owner="test") == 1
    assert [method for method, _ in servicenow.requests] == ["PATCH"]
    # Deleted there since: the write's 404 is followed by the lookup and a new record.
    del servicenow.tables["change_request"][servicenow.changes_for(change.number)[0]["sys_id"]]
    change = change_request_update(actor=world.requester, change=change, title="Upgrade payments-api to 4.3")
    servicenow.requests.clear()
    assert deliver_change("servicenow", change.pk, owner="test") == 1
    assert [method for method, _ in servicenow.requests] == ["PATCH", "GET", "POST"]
    assert servicenow.applied_keys(change.number) == keys_of(change, "servicenow")
