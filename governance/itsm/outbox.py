"""The transactional outbox of change updates: written in the transaction that moves the change, so the move and
the update that mirrors it commit together or not at all. Workers deliver it (governance/itsm/relay.py).

Each update carries the change as the connector maps it at that moment (`payload_for`), so the remote sees every
state the change went through, in order, however late the delivery. Its idempotency key names the connector, the
change and its place in the change's updates (not the attempt), so the remote recognises a second delivery.
"""

import functools
import logging
from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from cmdb.models import Team
from governance.audit.ledger import audit_record
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, Forbidden
from governance.itsm.connectors import ConnectorConfig, connectors, connectors_for_team, payload_for
from governance.itsm.permissions import can_retry_outbox
from governance.models import ChangeRequest, OutboxMessage, OutboxState

logger = logging.getLogger(__name__)

DELIVER_TASK = "governance.tasks.itsm_deliver"  # governance/itsm/tasks.py


def connectors_of(change: ChangeRequest) -> list[ConnectorConfig]:
    """The connectors of the teams owning the change's CIs, each once."""
    chosen: dict[str, ConnectorConfig] = {}
    if not connectors():
        return []  # no query on a move where no ITSM tool is configured
    slugs = Team.objects.filter(configuration_items__change_requests=change).distinct().values_list("slug", flat=True)
    for slug in slugs:
        for config in connectors_for_team(slug):
            chosen.setdefault(config.name, config)
    return list(chosen.values())


def outbox_enqueue(change: ChangeRequest, event: str) -> list[OutboxMessage]:
    """One update of `change` for each of its connectors, in the caller's transaction, which holds the change's row
    lock (or has just created it): so the next sequence per connector and change is taken by one writer at a time.
    The relay's task is sent once that transaction commits."""
    configs = connectors_of(change)
    if not configs:
        return []
    last = dict(OutboxMessage.objects.filter(change=change, connector__in=[c.name for c in configs])
                .values_list("connector").annotate(Max("sequence")))
    now = timezone.now()
    messages = []
    for config in configs:
        sequence = last.get(config.name, 0) + 1
        messages.append(OutboxMessage(
            connector=config.name, change=change, sequence=sequence, event=event,
            payload=payload_for(config.kind, change), idempotency_key=f"{config.name}:{change.number}:{sequence}",
            next_attempt_at=now, created_at=now))
    OutboxMessage.objects.bulk_create(messages)
    for config in configs:
        transaction.on_commit(functools.partial(send, config.name, change.pk))
    return messages


def send(connector: str, change_id: int, *, countdown: float | None = None) -> None:
    """Wake a worker for this change's updates to this connector. The broker being down loses nothing: the
    outbox holds the update and the beat job (`itsm-sweep`) sends the task again."""
    try:  # by name: the task's module imports the relay, which imports this one
        current_app.send_task(DELIVER_TASK, args=(connector, change_id), countdown=countdown)
    except OperationalError:
        logger.warning("Could not queue the ITSM delivery of change %s to %s; the beat job will.", change_id,
                       connector)


def outbox_retry(*, actor: ActingUser, message: OutboxMessage) -> OutboxMessage:
    """An administrator sends a failed update again, with its attempts counted afresh; the change's later updates,
    which waited behind it, follow once it is delivered. In the ledger."""
    if not can_retry_outbox(actor):
        raise Forbidden("Only an administrator retries an ITSM update.")
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().select_related("change").get(pk=message.pk)
        if message.state != OutboxState.FAILED:
            raise Conflict(f"{message.idempotency_key} is {message.get_state_display().lower()}, not failed: "
                           "there is nothing to retry.", field="message", code="not_failed")
        OutboxMessage.objects.filter(pk=message.pk).update(state=OutboxState.PENDING, attempts=0,
                                                           next_attempt_at=timezone.now())
        audit_record("itsm_update_retried", obj=message.change, context={
            "connector": message.connector, "idempotency_key": message.idempotency_key, "event": message.event,
            "last_error": message.last_error})
        transaction.on_commit(lambda: send(message.connector, message.change_id))
    message.refresh_from_db()
    return message


@dataclass(frozen=True)
class ConnectorStatus:
    """How a connector keeps up: its last successful delivery, its backlog (updates not yet delivered and the age
    of the oldest), and its failed updates, which hold their changes' later ones back."""

    config: ConnectorConfig
    last_delivered_at: datetime | None
    backlog: int
    oldest_waiting_since: datetime | None
    failed: list[OutboxMessage]


def connectors_status(*, failed_limit: int = 100) -> list[ConnectorStatus]:
    """Every configured connector's status, in two queries."""
    configs = connectors()
    names = [config.name for config in configs]
    waiting = ~Q(state=OutboxState.DELIVERED)
    figures = {row["connector"]: row for row in OutboxMessage.objects.filter(connector__in=names)
               .values("connector").annotate(last=Max("delivered_at"), backlog=Count("pk", filter=waiting),
                                             oldest=Min("created_at", filter=waiting))}
    failed: dict[str, list[OutboxMessage]] = {name: [] for name in names}
    for message in (OutboxMessage.objects.filter(connector__in=names, state=OutboxState.FAILED)
                    .select_related("change").order_by("created_at")[:failed_limit]):
        failed[message.connector].append(message)
    return [ConnectorStatus(config=config, last_delivered_at=figures.get(config.name, {}).get("last"),
                            backlog=figures.get(config.name, {}).get("backlog", 0),
                            oldest_waiting_since=figures.get(config.name, {}).get("oldest"),
                            failed=failed[config.name]) for config in configs]
