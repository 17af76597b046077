"""The deployment lifecycles' tables, as plain data: a reported deployment ends once, in one of four ways; one
Changeboard runs queues, starts, pauses and resumes, and ends once; a step runs once to its end."""

import pytest

from releases.models import DeploymentStatus as D
from releases.models import StepState as St
from releases.workflow import (
    FINISHED,
    REPORTED,
    RUN_ENDS,
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    end_refusal,
    run_refusal,
    step_refusal,
)

ENDS = {D.SUCCEEDED, D.FAILED, D.ROLLED_BACK, D.ABANDONED}


@pytest.mark.parametrize("current", list(D))
@pytest.mark.parametrize("target", list(D))
def test_only_a_started_deployment_ends_and_only_in_an_end(current, target):
    allowed = current == D.STARTED and target in ENDS
    assert (end_refusal(current, target) is None) == allowed


def test_an_ended_deployment_says_how_it_ended():
    assert end_refusal(D.SUCCEEDED, D.FAILED) == "already ended succeeded"
    assert end_refusal(D.STARTED, D.STARTED) == "cannot end started"


def test_a_pipeline_reports_a_start_and_every_end_but_the_hand_made_one():
    assert set(FINISHED) == ENDS - {D.ABANDONED}
    assert set(REPORTED) == {D.STARTED, *FINISHED}


# --- deployments Changeboard runs, and their steps ----------------------------------------------------------------

RUN_MOVES = {
    (D.QUEUED, D.STARTED), (D.QUEUED, D.ABORTED),
    (D.STARTED, D.PAUSED), (D.PAUSED, D.STARTED), (D.PAUSED, D.ABORTED),
    (D.STARTED, D.SUCCEEDED), (D.STARTED, D.FAILED), (D.STARTED, D.ROLLED_BACK), (D.STARTED, D.ABORTED),
}


@pytest.mark.parametrize("current", list(D))
@pytest.mark.parametrize("target", list(D))
def test_a_run_deployment_queues_starts_pauses_and_resumes_and_ends_once(current, target):
    assert (run_refusal(current, target) is None) == ((current, target) in RUN_MOVES)


def test_a_run_deployment_is_never_abandoned_and_an_end_leads_nowhere():
    assert all(D.ABANDONED not in targets for targets in RUN_TRANSITIONS.values())
    assert not set(RUN_ENDS) & set(RUN_TRANSITIONS)
    assert run_refusal(D.ROLLED_BACK, D.STARTED) == "already ended rolled back"
    assert run_refusal(D.QUEUED, D.PAUSED) == "cannot go from queued to paused"


STEP_MOVES = {
    (St.PENDING, St.RUNNING), (St.PENDING, St.SKIPPED),
    (St.RUNNING, St.RUNNING), (St.RUNNING, St.SUCCEEDED), (St.RUNNING, St.FAILED),
}


@pytest.mark.parametrize("current", list(St))
@pytest.mark.parametrize("target", list(St))
def test_a_step_runs_once_to_an_end_or_is_skipped_and_a_lapsed_lease_is_taken_over(current, target):
    assert (step_refusal(current, target) is None) == ((current, target) in STEP_MOVES)
    assert ((current, target) in STEP_MOVES) == (target in STEP_TRANSITIONS.get(current, frozenset()))


def test_a_step_that_ended_says_how():
    assert step_refusal(St.SUCCEEDED, St.RUNNING) == "the step already ended succeeded"
    assert step_refusal(St.PENDING, St.FAILED) == "a step cannot go from pending to failed"
