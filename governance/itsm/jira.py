"""Jira Service Management through its REST API (/rest/servicedeskapi): each change mirrored to a customer request
whose summary starts with the change's number (looked up before creating, so a create sent twice finds the first
request), then moved by the transition the connector's configuration names for the change's new status.

The transition carries the update's outbox idempotency key in its comment, written by the same call: a delivery
that finds its key among the request's comments was applied already and is not applied again."""

from collections.abc import Iterator

from governance.itsm.config import ConnectorConfig
from governance.itsm.remote import (
    DeliveryResult,
    RemoteRefused,
    answer_json,
    call,
    delivered,
    one_by_one,
)
from governance.models import ChangeRequest, ItsmRecord, OutboxMessage

REQUESTS = "/rest/servicedeskapi/request"
PAGE = 50
# Jira's summary field holds 255 characters.
SUMMARY = 255
# The outbox's events that are not a move of the change (the others are the status it moved to).
NOT_MOVES = frozenset({"created", "updated"})


def jira_payload(change: ChangeRequest) -> dict:
    return {"change": change.number, "summary": f"{change.number}: {change.title}"[:SUMMARY],
            "description": change.description, "status": change.status}


class JiraClient:
    def __init__(self, config: ConnectorConfig):
        self.config = config

    def deliver(self, message: OutboxMessage, record: ItsmRecord | None) -> DeliveryResult:
        """Create the change's request if it has none, then move it as the change moved."""
        return delivered(self.config, lambda client: self._deliver(client, message, record))

    def deliver_all(self, messages: list[OutboxMessage], record: ItsmRecord | None) -> Iterator[DeliveryResult]:
        return one_by_one(self.deliver, messages, record)

    def _deliver(self, client, message: OutboxMessage, record: ItsmRecord | None) -> DeliveryResult:
        payload = message.payload
        found = {"issueId": record.remote_id, "issueKey": record.remote_number} if record else \
            self._find(client, payload["change"], payload["summary"])
        steps = []
        if found is None:
            found = self._create(client, payload)
            steps.append(f"{found['issueKey']} created for {payload['change']}")
        transition = self.config.options.get("transitions", {}).get(payload["status"])
        if message.event in NOT_MOVES:
            # An edit leaves the change where it was: the request is where it was too, and Jira refuses a
            # transition to the status it is in.
            steps.append(f"{payload['change']} {message.event}, still {payload['status']}")
        elif transition is None:
            steps.append(f"no transition is configured for {payload['status']}")
        elif self._applied(client, found["issueId"], message.idempotency_key):
            steps.append(f"{found['issueKey']} already has update {message.idempotency_key}")
        else:
            call(client, self.config, "POST", f"{REQUESTS}/{found['issueId']}/transition", json={
                "id": str(transition),
                "additionalComment": {"body": f"Changeboard: {payload['change']} is {payload['status']} "
                                              f"(update {message.idempotency_key})."}})
            steps.append(f"{found['issueKey']} moved by transition {transition} for {payload['status']}")
        return DeliveryResult(ok=True, retry=False, remote_id=str(found["issueId"]),
                              remote_number=found.get("issueKey", ""), detail="; ".join(steps) + ".")

    def _find(self, client, number: str, summary: str) -> dict | None:
        """The request already made for the change: the search is by words, so the summary is compared too."""
        response = call(client, self.config, "GET", REQUESTS, params={
            "searchTerm": number, "serviceDeskId": str(self.config.options["service_desk_id"]),
            "requestOwnership": "ALL_REQUESTS", "requestStatus": "ALL_REQUESTS", "limit": str(PAGE)})
        for request in answer_json(response, self.config).get("values") or []:
            if _summary(request).startswith(f"{number}: ") or _summary(request) == summary:
                return request
        return None

    def _create(self, client, payload: dict) -> dict:
        response = call(client, self.config, "POST", REQUESTS, json={
            "serviceDeskId": str(self.config.options["service_desk_id"]),
            "requestTypeId": str(self.config.options["request_type_id"]),
            "requestFieldValues": {"summary": payload["summary"], "description": payload["description"]}})
        created = answer_json(response, self.config)
        if not created.get("issueId") or not created.get("issueKey"):
            raise RemoteRefused(DeliveryResult(ok=False, retry=True, detail=(
                f"Jira answered the request created for {payload['change']} without its issueId and issueKey.")))
        return created

    def _applied(self, client, issue: str, key: str) -> bool:
        start = 0
        while True:
            response = call(client, self.config, "GET", f"{REQUESTS}/{issue}/comment",
                            params={"start": str(start), "limit": str(PAGE)})
            page = answer_json(response, self.config)
            comments = page.get("values") or []
            if any(f"(update {key})" in (comment.get("body") or "") for comment in comments):
                return True
            if page.get("isLastPage", True) or not comments:
                return False
            start += len(comments)


def _summary(request: dict) -> str:
    for value in request.get("requestFieldValues") or []:
        if value.get("fieldId") == "summary":
            return str(value.get("value") or "")
    return ""
