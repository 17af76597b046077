"""The gate's decision asked by Changeboard itself (the deployments it runs): no pipeline, no token, the same rules
and the same reasons as a pipeline's question gets."""

import uuid
from datetime import UTC, datetime

import pytest

from governance.calendar.services import lockdown_declare
from governance.core.errors import InvalidInput
from governance.gate.services import Question, gate_decision
from releases.models import Deployment, DeploymentStatus
from tests.governance.gate.gate_world import CHECKS, DIGEST, question

pytestmark = pytest.mark.django_db


def asked(world) -> Question:
    return Question(change=world["change"].number, service="payments-api", environment="prod", digest=DIGEST)


def test_changeboard_gets_the_same_answer_as_a_pipeline(api, pipeline, world, release_manager):
    assert gate_decision(asked(world), now=datetime.now(UTC)) == []
    lockdown_declare(actor=release_manager, reason="INC-3 outage", scope={"everything": True})
    reasons = gate_decision(asked(world), now=datetime.now(UTC))
    answer = api.as_user(pipeline).post(CHECKS, question(world), format="json").json()
    assert [r["code"] for r in reasons] == [r["code"] for r in answer["reasons"]] == ["change_on_hold", "lockdown"]
    assert [r["message"] for r in reasons] == [r["message"] for r in answer["reasons"]]


def test_an_unknown_name_is_refused_naming_the_field(world):
    with pytest.raises(InvalidInput) as caught:
        gate_decision(Question(change="CHG9999999", service="payments-api", environment="prod", digest=DIGEST),
                      now=datetime.now(UTC))
    assert caught.value.field == "change"


@pytest.mark.parametrize("status", [DeploymentStatus.STARTED, DeploymentStatus.PAUSED])
def test_a_deployment_started_or_paused_holds_the_environment(world, pipeline, status):
    Deployment.objects.create(service=world["service"], environment=world["prod"], artifact=world["artifact"],
                              status=status, check_id=uuid.uuid4(), reported_by=pipeline)
    reasons = gate_decision(asked(world), now=datetime.now(UTC))
    assert [r["code"] for r in reasons] == ["environment_locked"]
