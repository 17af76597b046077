"""The lifecycle of a change as data, and the one function that says whether a move may happen.

No database access here: the table and `transition_refusal` are tested exhaustively as plain data.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from django.db.models import Q

from governance.models.changes import OPEN_STATES, ChangeType
from governance.models.changes import ChangeStatus as S


class Mover(Enum):
    SYSTEM = "Changeboard itself"
    REQUESTER = "the requester"
    IMPLEMENTER = "the implementer"
    RELEASE_MANAGER = "a release manager"


@dataclass(frozen=True)
class ChangeFacts:
    status: str
    change_type: str
    has_cis: bool
    has_environment: bool
    planned_start: datetime | None
    planned_end: datetime | None
    has_implementation_plan: bool
    has_backout_plan: bool
    has_template: bool
    retrospective_done: bool


@dataclass(frozen=True)
class MoverFacts:
    """Who asks: None for Changeboard itself, else which parts they play in this change."""

    is_system: bool = False
    is_requester: bool = False
    is_implementer: bool = False
    is_release_manager: bool = False

    def plays(self, mover: Mover) -> bool:
        return {
            Mover.SYSTEM: self.is_system,
            Mover.REQUESTER: self.is_requester,
            Mover.IMPLEMENTER: self.is_implementer,
            Mover.RELEASE_MANAGER: self.is_release_manager,
        }[mover]


SYSTEM = MoverFacts(is_system=True)
# A change may start implementing, and deploy, this long before its window opens (people get ready).
EARLY_START = timedelta(minutes=15)


class Window(Enum):
    UNPLANNED = "unplanned"
    NOT_OPEN = "not open yet"
    OPEN = "open"
    CLOSED = "closed"


def window_at(start: datetime | None, end: datetime | None, at: datetime) -> Window:
    """Where `at` stands against a change's window, for implementing it and for deploying under it (the gate).
    Its twin for queries is `window_open_q`."""
    if start is None or end is None:
        return Window.UNPLANNED
    if at < start - EARLY_START:
        return Window.NOT_OPEN
    return Window.CLOSED if at > end else Window.OPEN


def window_open_q(at: datetime) -> Q:
    """The changes whose window is open at `at`, as `window_at` says."""
    return Q(planned_start__lte=at + EARLY_START, planned_end__gte=at)


# (from, to) -> who may make the move. What must hold first is in `_precondition`.
TRANSITIONS: dict[tuple[str, str], frozenset[Mover]] = {
    (S.DRAFT, S.SUBMITTED): frozenset({Mover.REQUESTER}),
    (S.SUBMITTED, S.ASSESSED): frozenset({Mover.SYSTEM}),
    (S.ASSESSED, S.CAB_REVIEW): frozenset({Mover.SYSTEM}),
    (S.ASSESSED, S.APPROVED): frozenset({Mover.SYSTEM}),
    (S.CAB_REVIEW, S.APPROVED): frozenset({Mover.SYSTEM}),
    (S.CAB_REVIEW, S.REJECTED): frozenset({Mover.SYSTEM}),
    (S.CAB_REVIEW, S.DRAFT): frozenset({Mover.SYSTEM}),  # the approval request expired
    (S.APPROVED, S.CAB_REVIEW): frozenset({Mover.SYSTEM}),  # approvals went stale
    (S.SCHEDULED, S.CAB_REVIEW): frozenset({Mover.SYSTEM}),
    (S.APPROVED, S.SCHEDULED): frozenset({Mover.RELEASE_MANAGER}),
    # Changeboard moves a change as the deployment it runs for it goes: implementing when it starts (scheduled or
    # not), then completed, failed or rolled back.
    (S.APPROVED, S.IMPLEMENTING): frozenset({Mover.SYSTEM}),
    (S.SCHEDULED, S.IMPLEMENTING): frozenset({Mover.IMPLEMENTER, Mover.RELEASE_MANAGER, Mover.SYSTEM}),
    (S.IMPLEMENTING, S.COMPLETED): frozenset({Mover.IMPLEMENTER, Mover.RELEASE_MANAGER, Mover.SYSTEM}),
    (S.IMPLEMENTING, S.FAILED): frozenset({Mover.IMPLEMENTER, Mover.RELEASE_MANAGER, Mover.SYSTEM}),
    (S.IMPLEMENTING, S.ROLLED_BACK): frozenset({Mover.IMPLEMENTER, Mover.RELEASE_MANAGER, Mover.SYSTEM}),
    (S.COMPLETED, S.CLOSED): frozenset({Mover.RELEASE_MANAGER}),
    (S.FAILED, S.CLOSED): frozenset({Mover.RELEASE_MANAGER}),
    (S.ROLLED_BACK, S.CLOSED): frozenset({Mover.RELEASE_MANAGER}),
    **{(state, S.CANCELLED): frozenset({Mover.REQUESTER, Mover.RELEASE_MANAGER}) for state in OPEN_STATES},
}


def transition_refusal(change: ChangeFacts, target: str, mover: MoverFacts, now: datetime) -> str | None:
    """None when the move may happen now; otherwise the reason it may not, in words for the person asking."""
    movers = TRANSITIONS.get((change.status, target))
    if movers is None:
        return f"A change cannot go from {S(change.status).label} to {S(target).label}."
    if not any(mover.plays(m) for m in movers):
        if movers == {Mover.SYSTEM}:
            return f"Changeboard moves a change to {S(target).label} by itself; nobody does it by hand."
        allowed = " or ".join(m.value for m in sorted(movers - {Mover.SYSTEM}, key=lambda m: m.value))
        return f"Only {allowed} may move this change to {S(target).label}."
    return _precondition(change, target, now)


def _precondition(change: ChangeFacts, target: str, now: datetime) -> str | None:
    if target == S.SUBMITTED:
        missing = [name for name, present in (
            ("affected CIs", change.has_cis),
            ("a target environment", change.has_environment),
            ("a planned window", change.planned_start is not None and change.planned_end is not None),
            ("an implementation plan", change.has_implementation_plan),
            ("a backout plan", change.has_backout_plan or change.change_type == ChangeType.STANDARD),
            ("a standard change template", change.has_template or change.change_type != ChangeType.STANDARD),
        ) if not present]
        if missing:
            return "Before submitting, add " + ", ".join(missing) + "."
    if target == S.SCHEDULED and (change.planned_end is None or change.planned_end <= now):
        return "The planned window is over: move it before scheduling."
    if target == S.IMPLEMENTING:
        window = window_at(change.planned_start, change.planned_end, now)
        if window == Window.UNPLANNED:
            return "The change has no planned window: plan one before implementing."
        if window == Window.NOT_OPEN:
            return f"The window has not opened yet: it opens at {change.planned_start:%Y-%m-%d %H:%M} UTC."
        if window == Window.CLOSED:
            return "The window has closed: reschedule the change."
    if (target == S.CLOSED and change.change_type == ChangeType.EMERGENCY and not change.retrospective_done):
        return "An emergency change is closed only after its retrospective review."
    return None


# The words on the button of each move a person makes, in the change page and in the admin's actions.
MOVE_LABELS: dict[str, str] = {
    S.SUBMITTED: "Submit for review",
    S.SCHEDULED: "Schedule",
    S.IMPLEMENTING: "Start implementing",
    S.COMPLETED: "Mark completed",
    S.FAILED: "Mark failed",
    S.ROLLED_BACK: "Mark rolled back",
    S.CLOSED: "Close",
    S.CANCELLED: "Cancel change",
}


def user_moves(status: str) -> list[str]:
    """The states a person may ask for from `status` (Changeboard's own moves left out)."""
    return [to for (frm, to), movers in TRANSITIONS.items() if frm == status and movers != {Mover.SYSTEM}]
