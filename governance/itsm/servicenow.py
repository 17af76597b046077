"""ServiceNow through its Table API: each change mirrored to a `change_request` whose `correlation_id` is the change's
number (looked up before creating, so a create sent twice finds the first record), updated by PATCH on its sys_id;
`incident` records read by time of update. Fields and states as ../shared/WIRE.md describes them.

Each update carries its outbox idempotency key in `correlation_display` (the task's display of the correlated
record, a standard field), so the record names the last update applied to it: a delivery that finds there its own key,
or the key of an update after it in the same batch, was applied already (before a worker died or an answer was lost)
and is not applied again. A batch of a change's updates reads the record once, before its first write: each write's
answer says what the record holds after it, and the lease on the batch means no one else writes it meanwhile. A batch
none of whose updates was ever sent (each on its first attempt, none failed) cannot be there, and reads nothing when
the change's record is known: its first write goes to that record's sys_id (a 404 there: the lookup, as above)."""

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from governance.itsm.config import ConnectorConfig
from governance.itsm.remote import (
    DeliveryResult,
    RemoteRefused,
    answer_json,
    call,
    delivered,
    http_client,
    redacted,
)
from governance.models import ChangeRequest, ChangeStatus, ItsmRecord, OutboxMessage

CHANGES = "/api/now/table/change_request"
INCIDENTS = "/api/now/table/incident"
PAGE = 500
# What the connector reads of a change_request, and asks a write to answer with.
SEEN_FIELDS = "sys_id,number,correlation_display"
S = ChangeStatus
STATE = {
    S.DRAFT: -5, S.SUBMITTED: -4, S.ASSESSED: -4, S.CAB_REVIEW: -3,
    # Authorised: ServiceNow moves an approved change on to Scheduled, where it waits for its window.
    S.APPROVED: -2, S.SCHEDULED: -2, S.IMPLEMENTING: -1,
    S.COMPLETED: 0, S.FAILED: 0, S.ROLLED_BACK: 0, S.CLOSED: 3,
    S.REJECTED: 4, S.CANCELLED: 4,
}
APPROVAL = {S.CAB_REVIEW: "requested", S.APPROVED: "approved", S.SCHEDULED: "approved", S.IMPLEMENTING: "approved",
            S.COMPLETED: "approved", S.FAILED: "approved", S.ROLLED_BACK: "approved", S.CLOSED: "approved",
            S.REJECTED: "rejected"}
OUTCOMES = {S.COMPLETED: ("successful", "Completed."), S.FAILED: ("unsuccessful", "Failed."),
            S.ROLLED_BACK: ("unsuccessful", "Rolled back.")}


def servicenow_payload(change: ChangeRequest) -> dict:
    """The change as a change_request's fields: times in UTC as the Table API writes them."""
    payload = {
        "correlation_id": change.number, "short_description": change.title[:160],
        "description": change.description, "type": change.change_type, "state": STATE[S(change.status)],
        "approval": APPROVAL.get(S(change.status), "not requested"),
        "implementation_plan": change.implementation_plan, "backout_plan": change.backout_plan,
        "test_plan": change.test_evidence, "start_date": _when(change.planned_start),
        "end_date": _when(change.planned_end),
    }
    outcome = _outcome(change)
    if outcome:
        payload["close_code"], payload["close_notes"] = OUTCOMES[S(outcome)]
    return payload


def _outcome(change: ChangeRequest) -> str | None:
    """How the change ended (completed, failed, rolled back), which a closed change keeps in its close code."""
    if change.status in OUTCOMES:
        return change.status
    if change.status != S.CLOSED:
        return None
    last = change.status_changes.filter(to_status__in=list(OUTCOMES)).order_by("-at", "-id").first()
    return last.to_status if last else None


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@dataclass
class Seen:
    """A batch's knowledge of the change's record: read once, before the batch's first write (None: there is no
    record yet), then what each write answered. `keys` are the batch's idempotency keys, in order; `unsent` says
    none of them was ever sent (each on its first attempt, none failed before), so the record cannot hold any."""

    keys: list[str]
    unsent: bool
    read: bool = False
    record: dict | None = None

    def applied(self, key: str) -> bool:
        """Whether the update of `key` was applied already: the record names it, or an update after it in the
        batch (updates are applied in order, so those before the one it names were applied too)."""
        last = (self.record or {}).get("correlation_display")
        return last in self.keys and self.keys.index(last) >= self.keys.index(key)


class ServiceNowClient:
    def __init__(self, config: ConnectorConfig):
        self.config = config

    def deliver(self, message: OutboxMessage, record: ItsmRecord | None) -> DeliveryResult:
        """Create or update the change_request the message's change is mirrored to."""
        return next(self.deliver_all([message], record))

    def deliver_all(self, messages: list[OutboxMessage], record: ItsmRecord | None) -> Iterator[DeliveryResult]:
        """Each of a change's updates in turn, in order, its result given before the next is sent; the caller stops
        at the first that fails."""
        seen = Seen([message.idempotency_key for message in messages],
                    unsent=all(message.attempts == 1 and not message.last_error for message in messages))
        for message in messages:
            yield delivered(self.config, functools.partial(self._deliver, message=message, record=record, seen=seen))

    def _deliver(self, client, message: OutboxMessage, record: ItsmRecord | None, seen: Seen) -> DeliveryResult:
        number = message.payload["correlation_id"]
        if not seen.read:
            seen.record = self._first_look(client, record, number, seen)
            seen.read = True
        try:
            return self._apply(client, message, seen)
        except RemoteRefused as refused:
            if refused.status != 404:
                raise
            # The record was deleted there since it was named: whichever carries the change's number, or a new one.
            seen.record = self._find(client, number)
            return self._apply(client, message, seen)

    def _first_look(self, client, record: ItsmRecord | None, number: str, seen: Seen) -> dict | None:
        """The record before the batch's first write. A batch never sent before cannot be there, so the id of the
        record the change was mirrored to is all its first write needs; otherwise the record is read."""
        if record and seen.unsent:
            return {"sys_id": record.remote_id, "number": record.remote_number}
        return self._current(client, record, number) if record else self._find(client, number)

    def _apply(self, client, message: OutboxMessage, seen: Seen) -> DeliveryResult:
        number, found = message.payload["correlation_id"], seen.record
        if found and seen.applied(message.idempotency_key):
            return self._result(found, f"{found['number']} already has update {message.idempotency_key}.")
        body = {**message.payload, "correlation_display": message.idempotency_key}
        answer_fields = {"sysparm_fields": SEEN_FIELDS}
        if found:
            response = call(client, self.config, "PATCH", f"{CHANGES}/{found['sys_id']}", json=body,
                            params=answer_fields)
            verb = "updated"
        else:
            response = call(client, self.config, "POST", CHANGES, json=body, params=answer_fields)
            verb = "created"
        written = answer_json(response, self.config).get("result") or {}
        if not written.get("sys_id"):
            raise RemoteRefused(DeliveryResult(ok=False, retry=True, detail=redacted(
                f"ServiceNow answered the {verb} change_request of {number} without its sys_id.", self.config)))
        seen.record = written
        return self._result(written, f"{written.get('number', '')} {verb} for {number} "
                                     f"(update {message.idempotency_key}).")

    def _find(self, client, number: str) -> dict | None:
        response = call(client, self.config, "GET", CHANGES, params={
            "sysparm_query": f"correlation_id={number}", "sysparm_fields": SEEN_FIELDS, "sysparm_limit": "1"})
        found = answer_json(response, self.config).get("result") or []
        return found[0] if found else None

    def _current(self, client, record: ItsmRecord, number: str) -> dict | None:
        """The record the change was mirrored to; if it was deleted there, whichever carries the change's number."""
        try:
            response = call(client, self.config, "GET", f"{CHANGES}/{record.remote_id}",
                            params={"sysparm_fields": SEEN_FIELDS})
        except RemoteRefused as refused:
            if refused.status != 404:
                raise
            return self._find(client, number)
        return answer_json(response, self.config).get("result") or {}

    def _result(self, written: dict, detail: str) -> DeliveryResult:
        return DeliveryResult(ok=True, retry=False, remote_id=written["sys_id"],
                              remote_number=written.get("number", ""), detail=redacted(detail, self.config))

    def incidents_since(self, since: datetime) -> list[dict]:
        """The incident records updated at or after `since`, oldest first, as the Table API gives them. Raises
        RemoteRefused (its `result` says whether to try again) or MissingCredential."""
        query = f"sys_updated_on>={_when(since)}^ORDERBYsys_updated_on"
        incidents: list[dict] = []
        with http_client(self.config) as client:
            while True:
                response = call(client, self.config, "GET", INCIDENTS, params={
                    "sysparm_query": query, "sysparm_limit": str(PAGE), "sysparm_offset": str(len(incidents)),
                    "sysparm_exclude_reference_link": "true"})
                page = answer_json(response, self.config).get("result") or []
                incidents += page
                if len(page) < PAGE:
                    return incidents
