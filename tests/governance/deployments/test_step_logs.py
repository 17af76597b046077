"""Every step of a deployment Changeboard runs is a structured event in the process log: the deployment, its change,
the wave, the step, its targets, how it ended and how long it took; every move of the deployment too."""

import pytest

from governance.deployments.orchestration import HOOKS
from releases.engine import advance
from tests.governance.deployments.world import drive, start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]


def test_each_step_is_a_json_event_naming_what_it_acted_on(deploy_world, release_manager, json_log):
    deployment = start(deploy_world, release_manager)
    advance(deployment.pk, owner="test-worker", hooks=HOOKS)  # wave 1's checks
    advance(deployment.pk, owner="test-worker", hooks=HOOKS)  # wave 1's rollout
    checks, rollout = json_log.events("deployment_step")
    canary = deploy_world.plan.waves.get(position=1).targets
    assert rollout == {**rollout, "deployment": deployment.number, "change": deploy_world.change.number,
                       "service": "shop-api", "environment": "staging", "wave": "canary", "wave_position": 1,
                       "step": "rollout", "targets": canary, "attempt": 1, "result": "succeeded",
                       "logger": "releases.engine", "level": "info"}
    assert rollout["duration_ms"] > 0 and checks["step"] == "pre_check"


def test_a_deployment_ending_is_an_event_too(deploy_world, release_manager, json_log):
    deployment = drive(start(deploy_world, release_manager))
    assert deployment.status == "succeeded"
    [ended] = json_log.events("deployment_status")
    assert (ended["deployment"], ended["moved_from"], ended["moved_to"]) == (deployment.number, "started",
                                                                             "succeeded")
