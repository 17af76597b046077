"""The outbox: a change's move and its update commit together; the relay delivers a change's updates in order,
backs off and gives up after the limit, holds the later updates behind a failed one, and an administrator sends it
again from the connectors page. The relay runs here in the test's process, against a real HTTP receiver (the
generic signed webhook's); tests/governance/itsm/test_outbox_worker.py runs it in real workers."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from governance.core.errors import Conflict, Forbidden
from governance.itsm.outbox import outbox_retry
from governance.itsm.relay import backoff_seconds, claim, deliver_change, outbox_sweep
from governance.models import AuditCapture, ChangeStatus, OutboxMessage, OutboxState
from tests.governance.itsm.conftest import webhook_entry
from tests.governance.itsm.outbox_world import keys_of, outbound_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(webhook_receiver):
    return webhook_receiver


@pytest.fixture
def world(webhook_connector, settings, requester):
    settings.ITSM_MAX_ATTEMPTS = 3
    settings.ITSM_RETRY_BASE_MS = 0  # retries due at once: the test calls the relay itself
    return outbound_world(requester)


def deliver(world, change) -> int:
    return deliver_change("webhook", change.pk, owner="test")


def test_each_move_of_a_change_queues_an_update_with_the_change_as_it_was(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        change = world.raise_change("Upgrade payments-api")
    assert len(sent) == 1  # the relay's task, sent once the change is committed
    world.move_through(change)
    updates = list(OutboxMessage.objects.filter(change=change).order_by("sequence"))
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    assert [u.idempotency_key for u in updates] == [f"webhook:{change.number}:{n}" for n in range(1, len(updates) + 1)]
    assert [u.event for u in updates][:2] == ["created", "submitted"] and updates[-1].event == "cancelled"
    # Each carries the change as it was at its move: the status it moved to, the edit the status it had.
    expected = {"created": "draft"}
    assert [u.payload["status"] for u in updates] == [
        expected.get(u.event, u.event if u.event != "updated" else updates[i - 1].payload["status"])
        for i, u in enumerate(updates)]
    assert updates[0].payload["title"] == "Upgrade payments-api"
    assert updates[-1].payload["title"] == "Upgrade payments-api (edited)"


def test_a_refused_move_queues_nothing(world, release_manager):
    change = world.raise_change("Upgrade payments-api")
    with pytest.raises(Conflict):
        from governance.changes.services import change_request_transition
        change_request_transition(actor=world.requester, change=change, target=ChangeStatus.COMPLETED)
    assert OutboxMessage.objects.filter(change=change).count() == 1


def test_a_change_of_a_team_without_connector_queues_nothing(world, itsm_configure, webhook_receiver):
    itsm_configure(webhook_entry(webhook_receiver, teams=["search"]))
    assert OutboxMessage.objects.filter(change=world.raise_change("Payments' change")).count() == 0


def test_updates_reach_the_remote_in_order_each_once(world, receiver):
    change = world.move_through(world.raise_change("Upgrade payments-api"))
    keys = keys_of(change, "webhook")
    assert deliver(world, change) == len(keys)
    assert deliver(world, change) == 0  # run twice: nothing more is sent
    assert [entry["idempotency_key"] for entry in receiver.applied] == keys
    assert receiver.duplicates == 0
    assert all(m.delivered_at and m.attempts == 1 for m in OutboxMessage.objects.filter(change=change))


def test_a_failing_remote_is_tried_again_and_the_later_updates_wait_behind(world, receiver):
    change = world.move_through(world.raise_change("Upgrade payments-api"))
    keys = keys_of(change, "webhook")
    receiver.fail_next(2)
    assert deliver(world, change) == 0
    head = OutboxMessage.objects.get(idempotency_key=keys[0])
    assert head.state == OutboxState.PENDING and head.attempts == 1 and "500" in head.last_error
    assert not OutboxMessage.objects.filter(change=change, attempts__gt=0).exclude(pk=head.pk).exists()
    assert deliver(world, change) == 0
    assert deliver(world, change) == len(keys)
    assert [entry["idempotency_key"] for entry in receiver.applied] == keys


def test_after_the_last_attempt_the_update_fails_and_holds_the_change_back_until_an_admin_retries(
        world, receiver, admin_user, release_manager, client):
    change = world.move_through(world.raise_change("Upgrade payments-api"))
    keys = keys_of(change, "webhook")
    receiver.fail_next(3)
    for _ in range(3):
        deliver(world, change)
    head = OutboxMessage.objects.get(idempotency_key=keys[0])
    assert head.state == OutboxState.FAILED and head.attempts == 3
    assert deliver(world, change) == 0 and outbox_sweep() == 0  # failed: nothing passes it
    assert receiver.applied == []

    client.force_login(release_manager)
    page = client.get(reverse("itsm:connector_list"))
    assert page.status_code == 200
    assert keys[0].encode() in page.content and b"Retry</button>" not in page.content
    assert client.post(reverse("itsm:outbox_retry", args=[head.pk])).status_code == 403
    with pytest.raises(Forbidden):
        outbox_retry(actor=release_manager, message=head)

    client.force_login(admin_user)
    assert b"Retry</button>" in client.get(reverse("itsm:connector_list")).content
    assert client.post(reverse("itsm:outbox_retry", args=[head.pk])).status_code == 302
    assert AuditCapture.objects.filter(action="itsm_update_retried", context__idempotency_key=keys[0]).exists()
    assert deliver(world, change) == len(keys)
    assert [entry["idempotency_key"] for entry in receiver.applied] == keys
    with pytest.raises(Conflict):
        outbox_retry(actor=admin_user, message=head)  # delivered now: nothing to retry


def test_the_connectors_page_shows_last_sync_and_backlog_and_is_closed_to_others(world, release_manager, requester,
                                                                                 client):
    change = world.raise_change("Upgrade payments-api")
    client.force_login(release_manager)
    page = client.get(reverse("itsm:connector_list")).content.decode()
    assert "never" in page and "1 update not yet delivered" in page
    deliver(world, change)
    page = client.get(reverse("itsm:connector_list")).content.decode()
    assert "0 updates not yet delivered" in page and "never" not in page
    client.force_login(requester)
    assert client.get(reverse("itsm:connector_list")).status_code == 403
    assert client.post(reverse("itsm:outbox_retry", args=[1])).status_code == 403
    client.logout()
    assert client.get(reverse("itsm:connector_list")).status_code == 302


def test_a_worker_that_holds_the_head_keeps_it_and_an_expired_lease_is_taken_over(world):
    change = world.move_through(world.raise_change("Upgrade payments-api"))
    taken = claim("webhook", change.pk, "first")
    assert [t.message.sequence for t in taken] == list(range(1, len(taken) + 1)) and taken[0].attempt == 1
    assert claim("webhook", change.pk, "second") == []  # held by a live lease
    OutboxMessage.objects.filter(change=change).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert outbox_sweep() == 1
    again = claim("webhook", change.pk, "second")
    assert [t.attempt for t in again] == [2] * len(again)


def test_the_backoff_grows_with_jitter_and_yields_to_a_longer_retry_after(settings):
    settings.ITSM_RETRY_BASE_MS, settings.ITSM_RETRY_CAP_SECONDS = 1000, 30
    assert all(0 <= backoff_seconds(1, None) <= 1 for _ in range(50))
    assert max(backoff_seconds(4, None) for _ in range(200)) > 4  # the window doubled three times
    assert all(backoff_seconds(20, None) <= 30 for _ in range(50))
    assert backoff_seconds(1, 45.0) == 45.0

