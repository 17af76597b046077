"""The receiver of the generic signed webhook, a stand-in like the others (governance/itsm/standin.py)."""

import hmac
import time

from governance.itsm.standin import Answer, StandIn
from governance.itsm.webhook_out import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature


class WebhookReceiver(StandIn):
    """A tool behind the generic webhook: takes a POST whose signature verifies with `secret` and whose timestamp
    is recent, applies each idempotency key once (`applied`, in order), and counts the deliveries it dropped as
    already applied (`duplicates`). A bad signature or an old timestamp is a 401, and nothing is applied."""

    TOLERANCE_SECONDS = 300

    def __init__(self, secret: str = "webhook-secret-9d2c"):
        super().__init__()
        self.secret = secret
        self.applied: list[dict] = []
        self.duplicates = 0
        self.refused: list[str] = []

    def authorized(self, header: str) -> bool:
        return True  # the signature is the webhook's credential: checked in route(), which has the body

    def route(self, method, path, query, body, headers, raw):
        timestamp = headers.get(TIMESTAMP_HEADER) or ""
        expected = signature(self.secret, timestamp, raw)
        with self.lock:
            if not hmac.compare_digest(headers.get(SIGNATURE_HEADER) or "", expected):
                self.refused.append("signature")
                raise Answer(401, {"error": "bad signature"})
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.TOLERANCE_SECONDS:
                self.refused.append("timestamp")
                raise Answer(401, {"error": "stale timestamp"})
            if any(entry["idempotency_key"] == headers.get("Idempotency-Key") for entry in self.applied):
                self.duplicates += 1
                return 200, {"status": "already applied"}
            self.applied.append(body)
        return 202, {"status": "accepted"}
