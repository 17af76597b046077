"""The deployment lifecycle's table, as plain data: a started deployment ends once, in one of four ways."""

import pytest

from releases.models import DeploymentStatus as D
from releases.workflow import FINISHED, REPORTED, end_refusal

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
