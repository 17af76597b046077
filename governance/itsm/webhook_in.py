"""Incidents sent to Changeboard by signed webhook: signed as Changeboard signs its own outbound webhook (hex
HMAC-SHA256 of "<timestamp>.<body>"), the timestamp fresh, each signature taken once. The signature is the sender's
only credential; every refusal is in the ledger."""

import hmac
import re
import time
from dataclasses import replace

from django.db import IntegrityError, transaction

from governance.audit.context import acting_as, current_actor
from governance.audit.ledger import audit_record
from governance.core.errors import Conflict, DomainError, InvalidInput
from governance.core.inputs import JSONRefused, json_parsed
from governance.itsm.connectors import connector_named
from governance.itsm.incidents import incident_upsert
from governance.itsm.remote import environment_secret
from governance.itsm.webhook_out import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from governance.models.audit import ActorKind
from governance.models.itsm import Incident, WebhookReceipt

# A delivery signed longer ago (or further ahead) than this is refused: a captured one cannot be sent again later.
FRESH_SECONDS = 300
# An incident is a few kilobytes; more is refused before the signature is computed over it.
MAX_BODY_BYTES = 64 * 1024
_HEX_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^\d{1,12}$")


class SignatureRefused(DomainError):
    """The delivery does not prove it comes from the source: no secret, a wrong signature, a stale timestamp."""

    status = 401
    code = "bad_signature"


def webhook_secret(source: str) -> str:
    """The secret `source` signs with: the environment variable its connector names (credentials.secret_env), else
    ITSM_WEBHOOK_SECRET_<SOURCE> (upper case, - as _), for a ServiceNow connector whose own credentials are for
    calling it; or the secrets file <variable>_FILE names. Empty: the source sends no webhook."""
    config = connector_named(source)
    variable = (config.credentials.get("secret_env") if config else None) or \
        f"ITSM_WEBHOOK_SECRET_{source.upper().replace('-', '_')}"
    return environment_secret(variable)


def incident_webhook_take(*, source: str, timestamp: str, signed: str, body: bytes, now: float | None = None
                          ) -> Incident:
    """Check the delivery and take the incident it carries; a refusal is recorded and raised (401 for the
    signature or its age, 409 for a replay, 400 naming the field of a malformed incident, which writes nothing)."""
    try:
        _verify(source, timestamp, signed, body, time.time() if now is None else now)
        record = _parsed(body)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    WebhookReceipt.objects.create(sender=source, signature=signed)
            except IntegrityError:
                raise Conflict("This delivery was taken already: a replay is refused.", code="replayed") from None
            # The rows it writes are the source's, as the signature proves (the request itself signs nobody in).
            with acting_as(replace(current_actor(), kind=ActorKind.SYSTEM, name=f"{source} webhook")):
                return incident_upsert(source=source, record=record)
    except (SignatureRefused, Conflict) as refusal:
        audit_record("incident_webhook_refused", object_type="governance.incident", context={
            "source": source[:50], "code": refusal.code, "reason": refusal.message})
        raise


def _verify(source: str, timestamp: str, signed: str, body: bytes, now: float) -> None:
    secret = webhook_secret(source)
    if not secret:
        raise SignatureRefused(f"No incident source named {source[:50]} sends webhooks here.", code="unknown_source")
    if not _TIMESTAMP.match(timestamp):
        raise SignatureRefused(f"{TIMESTAMP_HEADER} must be the signing time in Unix seconds.",
                               field=TIMESTAMP_HEADER, code="bad_timestamp")
    if not _HEX_SIGNATURE.match(signed) or not _same(signature(secret, timestamp, body), signed):
        raise SignatureRefused(f"{SIGNATURE_HEADER} does not match the body.", field=SIGNATURE_HEADER)
    if abs(now - int(timestamp)) > FRESH_SECONDS:
        raise SignatureRefused(f"The delivery was signed more than {FRESH_SECONDS} seconds from now.",
                               field=TIMESTAMP_HEADER, code="stale_timestamp")


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _parsed(body: bytes):
    try:
        return json_parsed(body.decode())
    except UnicodeDecodeError:
        raise InvalidInput("The body is not UTF-8 text.", code="parse_error") from None
    except JSONRefused as refusal:
        raise InvalidInput(f"The body is not valid JSON: {refusal.message}", field=refusal.path,
                           code=refusal.code) from None
