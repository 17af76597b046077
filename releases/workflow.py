"""The lifecycle of a deployment as data, and the one function that says whether a deployment may end so.

A deployment starts when a pipeline (or GitHub) reports that it runs what the gate allowed, and ends once:
succeeded, failed or rolled back as reported, or abandoned by a release manager's hand when no end came. No
database access here: the table and `end_refusal` are tested as plain data.
"""

from releases.models import DeploymentStatus as D

# from -> the statuses it may end in. An ended deployment ends no more.
TRANSITIONS: dict[str, frozenset[str]] = {
    D.STARTED: frozenset({D.SUCCEEDED, D.FAILED, D.ROLLED_BACK, D.ABANDONED}),
}
# The ends a pipeline reports; a deployment ends abandoned only by hand.
FINISHED = (D.SUCCEEDED, D.FAILED, D.ROLLED_BACK)
# What a pipeline reports: a start, then one of its ends.
REPORTED = (D.STARTED, *FINISHED)


def end_refusal(current: str, target: str) -> str | None:
    """Why a deployment in `current` may not end as `target`; None when it may."""
    if target in TRANSITIONS.get(current, frozenset()):
        return None
    if current not in TRANSITIONS:
        return f"already ended {current}"
    return f"cannot end {target}"
