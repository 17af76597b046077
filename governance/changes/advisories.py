"""What a change's pages warn of while there is time to act: a hard freeze that will refuse it, approvals that
nobody may give. Each warning asks the rule that will refuse the change later (the calendar's verdict,
`decision_refusal`), never a copy of it."""

import copy
from dataclasses import dataclass
from datetime import datetime

from governance.changes.selectors import ApprovalState, approval_gaps, stopping_freezes
from governance.changes.services import approval_preview
from governance.models.changes import ChangeRequest
from governance.models.changes import ChangeStatus as S

# What a hard freeze over the window will refuse next, by the change's state.
FREEZE_CONSEQUENCES = {
    S.DRAFT: "it will be refused at approval",
    S.SUBMITTED: "it will be refused at approval",
    S.ASSESSED: "it will be refused at approval",
    S.CAB_REVIEW: "it will be refused at approval",
    S.APPROVED: "it cannot be scheduled",
    S.SCHEDULED: "it cannot be implemented",
}


@dataclass(frozen=True)
class Advisory:
    code: str  # hard_freeze, unapprovable
    message: str


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def freeze_advisories(change: ChangeRequest, *, now: datetime, cis: list | None = None) -> list[Advisory]:
    """The hard freezes over the window that will stop the change (none for an emergency change)."""
    consequence = FREEZE_CONSEQUENCES.get(S(change.status))
    if consequence is None or change.planned_start is None or change.planned_end is None:
        return []
    advisories = []
    for hit in stopping_freezes(change, now, cis):
        inside = hit.starts <= change.planned_start and change.planned_end <= hit.ends
        advisories.append(Advisory("hard_freeze", (
            f"The window {'lies inside' if inside else 'meets'} the hard freeze {hit.freeze.name} "
            f"({_span(hit.starts, hit.ends)}): {consequence}; move it.")))
    return advisories


def approval_advisories(change: ChangeRequest, *, now: datetime) -> list[Advisory]:
    """Approvals nobody may give: for a draft, those submitting it now would ask for; in review, those lacking."""
    if change.status == S.DRAFT:
        state = approval_preview(change, now=now)
        change = copy.copy(change)
        change.status = S.CAB_REVIEW  # as it would be once submitted, for the rule that says who may approve
    elif change.status == S.CAB_REVIEW:
        state = ApprovalState.of(change)
    else:
        return []
    return [Advisory("unapprovable", gap.message) for gap in approval_gaps(change, state)]


def change_advisories(change: ChangeRequest, *, now: datetime, approvals: bool = True,
                      cis: list | None = None) -> list[Advisory]:
    """Every warning for the change's pages; `approvals` asks who can approve too (for those who can act on it:
    it reads holders of the roles needed). `cis` are the change's, when the caller read them already."""
    return [*freeze_advisories(change, now=now, cis=cis),
            *(approval_advisories(change, now=now) if approvals else [])]
