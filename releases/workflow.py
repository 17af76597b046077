"""The lifecycles of deployments and of their steps as data, and the functions that say whether a move may happen.

A deployment a pipeline reports starts when the pipeline (or GitHub) says it runs what the gate allowed, and ends
once: succeeded, failed or rolled back as reported, or abandoned by a release manager's hand when no end came.
A deployment Changeboard runs waits queued while another holds its service in its environment, starts, may pause
and resume, and ends once: succeeded, failed, rolled back (a check failed and the waves done were undone) or
aborted by a release manager. Each of its steps is pending, then running, then succeeded or failed; a step the
rollout no longer needs is skipped. No database access here: the tables and the refusals are tested as plain data.
"""

from releases.models import DeploymentStatus as D
from releases.models import StepState as St

# from -> the statuses it may end in. An ended deployment ends no more.
TRANSITIONS: dict[str, frozenset[str]] = {
    D.STARTED: frozenset({D.SUCCEEDED, D.FAILED, D.ROLLED_BACK, D.ABANDONED}),
}
# The ends a pipeline reports; a deployment ends abandoned only by hand.
FINISHED = (D.SUCCEEDED, D.FAILED, D.ROLLED_BACK)
# What a pipeline reports: a start, then one of its ends.
REPORTED = (D.STARTED, *FINISHED)

# A deployment Changeboard runs: from -> where it may go.
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    D.QUEUED: frozenset({D.STARTED, D.ABORTED}),
    D.STARTED: frozenset({D.PAUSED, D.SUCCEEDED, D.FAILED, D.ROLLED_BACK, D.ABORTED}),
    D.PAUSED: frozenset({D.STARTED, D.ABORTED}),
}
RUN_ENDS = (D.SUCCEEDED, D.FAILED, D.ROLLED_BACK, D.ABORTED)

# A step of a deployment Changeboard runs. running -> running is a worker taking over a step whose lease ran out.
STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    St.PENDING: frozenset({St.RUNNING, St.SKIPPED}),
    St.RUNNING: frozenset({St.RUNNING, St.SUCCEEDED, St.FAILED}),
}
STEP_ENDS = (St.SUCCEEDED, St.FAILED, St.SKIPPED)


def end_refusal(current: str, target: str) -> str | None:
    """Why a deployment a pipeline reports, in `current`, may not end as `target`; None when it may."""
    if target in TRANSITIONS.get(current, frozenset()):
        return None
    if current not in TRANSITIONS:
        return f"already ended {current}"
    return f"cannot end {target}"


def run_refusal(current: str, target: str) -> str | None:
    """Why a deployment Changeboard runs, in `current`, may not move to `target`; None when it may."""
    if target in RUN_TRANSITIONS.get(current, frozenset()):
        return None
    if current in RUN_ENDS:
        return f"already ended {D(current).label.lower()}"
    return f"cannot go from {D(current).label.lower()} to {D(target).label.lower()}"


def step_refusal(current: str, target: str) -> str | None:
    """Why a step in `current` may not move to `target`; None when it may."""
    if target in STEP_TRANSITIONS.get(current, frozenset()):
        return None
    if current in STEP_ENDS:
        return f"the step already ended {St(current).label.lower()}"
    return f"a step cannot go from {St(current).label.lower()} to {St(target).label.lower()}"
