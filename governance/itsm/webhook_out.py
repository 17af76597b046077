"""The generic signed webhook, for any tool without a connector of its own: each update POSTed as JSON with its
idempotency key in the `Idempotency-Key` header (the receiver drops one it has seen), signed with the shared secret
over the timestamp and the body, so the receiver can tell it came from Changeboard and refuse an old one replayed:
X-Changeboard-Timestamp (Unix seconds) and X-Changeboard-Signature, the hex HMAC-SHA256 of f"{timestamp}.{body}"."""

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

from governance.itsm.config import ConnectorConfig
from governance.itsm.remote import DeliveryResult, call, credential, delivered, one_by_one
from governance.models import ChangeRequest, ItsmRecord, OutboxMessage

TIMESTAMP_HEADER = "X-Changeboard-Timestamp"
SIGNATURE_HEADER = "X-Changeboard-Signature"


def webhook_payload(change: ChangeRequest) -> dict:
    return {"change": change.number, "title": change.title, "type": change.change_type, "status": change.status,
            "planned_start": change.planned_start.isoformat() if change.planned_start else None,
            "planned_end": change.planned_end.isoformat() if change.planned_end else None}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 a signed delivery carries, sent or received."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookClient:
    def __init__(self, config: ConnectorConfig):
        self.config = config

    def deliver(self, message: OutboxMessage, record: ItsmRecord | None) -> DeliveryResult:
        """POST the update; the receiver keeps no record we could name, so the result has none."""
        return delivered(self.config, lambda client: self._post(client, message))

    def deliver_all(self, messages: list[OutboxMessage], record: ItsmRecord | None) -> Iterator[DeliveryResult]:
        return one_by_one(self.deliver, messages, record)

    def _post(self, client, message: OutboxMessage) -> DeliveryResult:
        secret = credential(self.config, "secret_env")
        body = json.dumps({"event": message.event, "sequence": message.sequence,
                           "idempotency_key": message.idempotency_key, "change": message.payload},
                          separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        response = call(client, self.config, "POST", "", content=body, headers={
            "Content-Type": "application/json", "Idempotency-Key": message.idempotency_key,
            TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)})
        return DeliveryResult(ok=True, retry=False,
                              detail=f"Delivered update {message.idempotency_key} ({response.status_code}).")
