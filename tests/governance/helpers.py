"""Plain functions shared by the areas' tests."""

from governance.changes.services import change_request_transition
from governance.models import ChangeRequest, ChangeStatus


def submit(change: ChangeRequest) -> ChangeRequest:
    """The change submitted by its requester, through the service."""
    return change_request_transition(actor=change.requester, change=change, target=ChangeStatus.SUBMITTED)


def status_of(change: ChangeRequest) -> str:
    """The change's status as the database has it now."""
    change.refresh_from_db()
    return change.status
