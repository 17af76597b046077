from governance.models.access import ApiToken
from governance.models.audit import AuditCapture, AuditCheckpoint, AuditEvent

__all__ = ["ApiToken", "AuditCapture", "AuditCheckpoint", "AuditEvent"]
