from governance.models.access import ApiToken
from governance.models.audit import AuditCapture, AuditCheckpoint, AuditEvent
from governance.models.calendar import (
    CalendarFeed,
    FreezeWindow,
    Lockdown,
    MaintenanceWindow,
    Occurrence,
    Severity,
)
from governance.models.changes import (
    Approval,
    ApprovalPolicy,
    ApprovalRequirement,
    CabAgendaItem,
    CabMeeting,
    ChangeRequest,
    ChangeStatus,
    ChangeStatusChange,
    ChangeType,
    Decision,
    PolicyRequirement,
    ReleaseStrategy,
    RiskLevel,
    StandardChangeTemplate,
)

__all__ = [
    "ApiToken", "Approval", "ApprovalPolicy", "ApprovalRequirement", "AuditCapture", "AuditCheckpoint",
    "AuditEvent", "CabAgendaItem", "CabMeeting", "CalendarFeed", "ChangeRequest", "ChangeStatus", "ChangeStatusChange",
    "ChangeType", "Decision", "FreezeWindow", "Lockdown", "MaintenanceWindow", "Occurrence", "PolicyRequirement",
    "ReleaseStrategy", "RiskLevel", "Severity", "StandardChangeTemplate",
]
