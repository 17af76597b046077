"""Reads of the audit ledger shared by pages, the API and exports."""

from django.db.models import QuerySet

from governance.audit.ledger import audit_seal
from governance.models import AuditCheckpoint, AuditEvent


def audit_events() -> QuerySet[AuditEvent]:
    """The whole ledger, newest first, with everything captured so far sealed into it."""
    audit_seal()
    return AuditEvent.objects.order_by("-seq")


def object_history(object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    return audit_events().filter(object_type=object_type, object_id=str(object_id))


def audit_checkpoints() -> QuerySet[AuditCheckpoint]:
    return AuditCheckpoint.objects.order_by("-seq", "-id")
