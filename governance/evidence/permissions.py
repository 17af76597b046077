"""Who may use the auditor's workspace: readers of the ledger read the evidence, exporters of the ledger build
bundles, and only auditors write notes (the one thing an auditor writes; an administrator's word is not an
auditor's finding)."""

from django.core.exceptions import PermissionDenied

from governance.audit.permissions import can_export_ledger, can_read_ledger
from governance.roles import Role


def can_read_evidence(user) -> bool:
    return can_read_ledger(user)


def require_evidence_reader(user) -> None:
    """For the workspace's pages: a 403 for anyone who does not read the evidence."""
    if not can_read_evidence(user):
        raise PermissionDenied("The evidence is open to auditors and administrators.")


def can_build_bundle(user) -> bool:
    return can_export_ledger(user)


def can_note(user) -> bool:
    return user.is_authenticated and user.is_active and user.groups.filter(name=Role.AUDITOR).exists()
