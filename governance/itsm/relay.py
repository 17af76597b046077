"""The relay: delivers a change's outbox updates to one connector, in sequence order, each at most once by the remote.

PostgreSQL holds the truth; a task only says "deliver change 42's updates to servicenow". `deliver_change` claims
the lowest updates not yet delivered (the head of the change's queue and those right behind it, a batch) with
SELECT ... FOR UPDATE SKIP LOCKED, marks them delivering under one lease (owner, expiry, and `attempts` as the
fencing token), and commits; it hands the batch to the connector, which delivers its updates one after the other
outside any transaction, stopping at the first that fails, and records the batch's results in one transaction whose
UPDATEs match only the updates whose lease still holds. Update n+1 is never claimed while n is not delivered, so the
remote sees them in order; a failed one (its attempts used up) holds the change's later ones back until an
administrator retries it.

A worker killed mid-batch leaves its updates delivering under a lease that runs out; the beat job's sweep sends the
task again and the next worker takes them over, as one batch again (a new attempt, the same idempotency keys, so a
remote that had applied some of them recognises them). The batch's lease is renewed for all its updates at once, so
the ones applied and not yet recorded always expire, and are taken over, together. A remote that fails is tried again
after an exponential backoff with full jitter, or after its Retry-After when that is longer.
"""

import logging
import os
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from governance.itsm.connectors import ConnectorConfig, DeliveryResult, connector_client, connector_named
from governance.itsm.outbox import send
from governance.itsm.remote import redacted
from governance.models import ItsmRecord, OutboxMessage, OutboxState

logger = logging.getLogger(__name__)

# How many of a change's updates one claim takes: a change's updates come a few at a time (a submission moves it
# three times in one transaction), and one claim for them saves two round trips each.
CLAIM_BATCH = 20
# A retry due sooner than this is sent with a countdown by the worker that failed; a later one waits for the sweep.
COUNTDOWN_LIMIT_SECONDS = 60
# The most (connector, change) pairs one sweep sends tasks for, so a long outage's backlog is woken in bounded bites.
SWEEP_LIMIT = 500
ERROR_LIMIT = 2000


def lease() -> timedelta:
    return timedelta(seconds=settings.ITSM_LEASE_SECONDS)


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class Claimed:
    """An update this worker holds: its row, the attempt (fencing token) it was claimed as, until when."""

    message: OutboxMessage
    attempt: int
    expires: datetime


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    """Full jitter over an exponential window (base * 2**(attempts - 1), capped), or the remote's Retry-After if
    that is longer: a remote that is back does not get every worker's retries at the same instant."""
    window = min(settings.ITSM_RETRY_CAP_SECONDS, settings.ITSM_RETRY_BASE_MS / 1000 * 2 ** max(attempts - 1, 0))
    return max(random.uniform(0, window), retry_after or 0.0)  # noqa: S311 (spreading retries, not a secret)


def claimable(now: datetime) -> Q:
    """An update a worker may take: pending and due, or delivering under a lease that ran out (its worker died)."""
    return (Q(state=OutboxState.PENDING, next_attempt_at__lte=now)
            | Q(state=OutboxState.DELIVERING, lease_expires_at__lt=now))


def claim(connector: str, change_id: int, owner: str) -> list[Claimed]:
    """Take the head of this change's queue for this connector and the claimable updates right behind it, in
    sequence order; none if the head is not claimable (held by a live lease, waiting out its backoff, or failed)."""
    now = timezone.now()
    undelivered = OutboxMessage.objects.filter(connector=connector, change_id=change_id).exclude(
        state=OutboxState.DELIVERED)
    if not undelivered.filter(claimable(now)).exists():
        return []  # one read, no transaction: most tasks, and the last claim of each, find nothing to take
    with transaction.atomic():
        _without_waiting_for_disk()
        rows = list(undelivered.select_for_update(skip_locked=True).order_by("sequence")[:CLAIM_BATCH])
        if not rows or undelivered.filter(sequence__lt=rows[0].sequence).exists():
            return []  # the head is locked by another worker claiming it (skipped): it is theirs
        taken: list[OutboxMessage] = []
        for row in rows:
            if (taken and row.sequence != taken[-1].sequence + 1) or not _claimable(row, now):
                break  # a row skipped as locked, or one that must wait: nothing behind it may pass it
            taken.append(row)
        if not taken:
            return []
        expires = now + lease()
        OutboxMessage.objects.filter(pk__in=[row.pk for row in taken]).update(
            state=OutboxState.DELIVERING, lease_owner=owner[:200], lease_expires_at=expires,
            attempts=F("attempts") + 1)
    for row in taken:
        row.state, row.lease_owner, row.attempts = OutboxState.DELIVERING, owner[:200], row.attempts + 1
    return [Claimed(row, row.attempts, expires) for row in taken]


def _without_waiting_for_disk() -> None:
    """The relay's own bookkeeping commits without waiting for the WAL to reach the disk: a claim or a result lost
    to a database crash only means an update delivered again, which its idempotency key makes harmless; waiting
    for the flush was a third of each update's time (tests/bench/bench_itsm.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _claimable(row: OutboxMessage, now: datetime) -> bool:
    if row.state == OutboxState.PENDING:
        return row.next_attempt_at <= now
    return row.state == OutboxState.DELIVERING and row.lease_expires_at is not None and row.lease_expires_at < now


def deliver_change(connector: str, change_id: int, *, owner: str) -> int:
    """Deliver this change's due updates to `connector`, in order, until none is left or one fails. Safe to call
    twice, or from two workers at once: how many it delivered."""
    config = connector_named(connector)
    if config is None:
        logger.warning("No ITSM connector is named %s any more: change %s's updates to it wait.", connector,
                       change_id)
        return 0
    client, record, delivered = None, None, 0
    while batch := claim(connector, change_id, owner):
        if client is None:  # not before: most tasks after a change's first find its updates delivered already
            client = connector_client(config)
        if record is None:  # the change's first delivery makes it
            record = ItsmRecord.objects.filter(connector=connector, change_id=change_id).first()
        recorded = _record(_delivered(client, config, batch, record), batch, record, config)
        delivered += recorded
        if recorded < len(batch):
            return delivered  # one failed (the change's later ones wait for it), or another worker took over
    return delivered


def _delivered(client, config: ConnectorConfig, batch: list[Claimed], record: ItsmRecord | None
               ) -> list[DeliveryResult]:
    """The results of the batch's updates, in order, up to the first that failed. The batch's lease is renewed when
    half of it has gone; none is sent once another worker took one of them over."""
    results = client.deliver_all([held.message for held in batch], record)
    delivered: list[DeliveryResult] = []
    expires = batch[0].expires
    for held in batch:
        if delivered and expires - timezone.now() < lease() / 2:
            renewed = _renewed(batch)
            if renewed is None:
                break
            expires = renewed
        result = _result(results, config, held.message)
        delivered.append(result)
        if not result.ok:
            break
    return delivered


def _result(results: Iterator[DeliveryResult], config: ConnectorConfig, message: OutboxMessage) -> DeliveryResult:
    try:
        return next(results)
    except Exception as exc:  # a client that breaks is a failed attempt, counted and retried like any other
        logger.exception("The %s connector broke delivering %s.", config.name, message.idempotency_key)
        return DeliveryResult(ok=False, retry=True, retry_after=None, remote_id="", remote_number="",
                              detail=f"The connector broke: {type(exc).__name__}: {exc}")


def _held(batch: list[Claimed]) -> QuerySet[OutboxMessage]:
    """The batch's updates this worker still holds: delivering, as the attempt it claimed them as."""
    mine = Q()
    for one in batch:
        mine |= Q(pk=one.message.pk, attempts=one.attempt)
    return OutboxMessage.objects.filter(mine, state=OutboxState.DELIVERING)


def _renewed(batch: list[Claimed]) -> datetime | None:
    """The batch's lease extended (those delivered and not yet recorded too, so that all of it runs out together);
    None when another worker took one of its updates over meanwhile."""
    expires = timezone.now() + lease()
    return expires if _held(batch).update(lease_expires_at=expires) == len(batch) else None


def _record(results: list[DeliveryResult], batch: list[Claimed], record: ItsmRecord | None,
            config: ConnectorConfig) -> int:
    """Record how the batch went, in one transaction, for the updates whose lease still holds: those delivered, the
    one that failed (tried again after its backoff, or given up), and those after it that were not sent (back as
    they were, the attempt not counted). How many delivered updates it recorded."""
    now = timezone.now()
    done = len(results) - (1 if results and not results[-1].ok else 0)
    with transaction.atomic():
        _without_waiting_for_disk()
        recorded = _held(batch[:done]).update(
            state=OutboxState.DELIVERED, delivered_at=now, last_error="", lease_owner="", lease_expires_at=None,
        ) if done else 0
        if recorded and record is None:
            _remember_remote(batch[0].message, results[:done], now)
        if done < len(results):
            _record_failure(batch[done], results[done], config, now)
        if len(results) < len(batch):
            _release(batch[len(results):])
    return recorded


def _record_failure(held: Claimed, result: DeliveryResult, config: ConnectorConfig, now: datetime) -> None:
    message = held.message
    give_up = not result.retry or held.attempt >= settings.ITSM_MAX_ATTEMPTS
    delay = backoff_seconds(held.attempt, result.retry_after)
    held_still = _held([held]).update(state=OutboxState.FAILED if give_up else OutboxState.PENDING,
                                      next_attempt_at=now + timedelta(seconds=delay),
                                      last_error=redacted(result.detail, config)[:ERROR_LIMIT], lease_owner="",
                                      lease_expires_at=None)
    if held_still and not give_up and delay < COUNTDOWN_LIMIT_SECONDS:
        transaction.on_commit(lambda: send(message.connector, message.change_id, countdown=delay))
    logger.warning("ITSM update %s to %s failed (attempt %s%s): %s", message.idempotency_key, config.name,
                   held.attempt, ", given up" if give_up else f", again in {delay:.1f} s",
                   redacted(result.detail, config))


def _remember_remote(message: OutboxMessage, results: list[DeliveryResult], now: datetime) -> None:
    """The remote record's number and id, from the first delivery that named it (it created or found it). (Later
    deliveries leave the row alone: it is governed, and a ledger event per update would say nothing the outbox does
    not.)"""
    named = next((result for result in results if result.remote_id), None)
    if named:
        ItsmRecord.objects.get_or_create(connector=message.connector, change_id=message.change_id, defaults={
            "remote_id": named.remote_id, "remote_number": named.remote_number, "synced_at": now})


def _release(held: list[Claimed]) -> None:
    """Updates claimed behind one that failed, or after the lease was lost, were not sent: they go back as they
    were, attempt not counted."""
    _held(held).update(state=OutboxState.PENDING, attempts=F("attempts") - 1, lease_owner="", lease_expires_at=None)


def outbox_sweep(*, now: datetime | None = None) -> int:
    """The beat job: send the task for each change whose next update is due and not moving (its task lost with
    Redis, its worker killed, its backoff over). How many tasks it sent."""
    now = now or timezone.now()
    earlier_undelivered = OutboxMessage.objects.filter(
        connector=OuterRef("connector"), change_id=OuterRef("change_id"), sequence__lt=OuterRef("sequence"),
    ).exclude(state=OutboxState.DELIVERED)
    heads = (OutboxMessage.objects.filter(claimable(now)).exclude(Exists(earlier_undelivered))
             .order_by("next_attempt_at").values_list("connector", "change_id")[:SWEEP_LIMIT])
    sent = 0
    for connector, change_id in heads:
        send(connector, change_id)
        sent += 1
    return sent
