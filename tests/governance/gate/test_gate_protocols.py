"""The same decision through the webhook gates of progressive delivery tools, which read the status only:
Argo Rollouts' web metric and Flagger's confirm-* hooks. 200 lets the rollout proceed; 403 halts it."""

import pytest
from rest_framework.test import APIClient

from governance.access.services import api_token_create
from governance.models import ChangeStatus, DeploymentCheck
from tests.governance.gate.gate_world import question

pytestmark = pytest.mark.django_db
FLAGGER = "/api/v1/gates/flagger/"
STATUS = "/api/v1/gates/status/"


def flagger_hook(world, token: str, **metadata) -> dict:
    """What Flagger POSTs: the canary, its phase, and the metadata set on the webhook in the Canary resource."""
    return {"name": "payments-api", "namespace": "payments", "phase": "Progressing", "checksum": "6d8f5c7b9",
            "metadata": {**question(world), "token": token, **metadata}}


@pytest.fixture
def secret(pipeline) -> str:
    return api_token_create(actor=pipeline, owner=pipeline, name="canary").secret


def test_an_argo_rollouts_web_metric_gets_200_to_proceed_and_403_to_halt(api, pipeline, world):
    client = api.as_user(pipeline)
    allowed = client.post(STATUS, question(world), format="json")
    assert allowed.status_code == 200 and allowed.json()["decision"] == "allow"
    world["change"].status = ChangeStatus.CAB_REVIEW
    world["change"].save()
    halted = client.post(STATUS, question(world), format="json")
    assert halted.status_code == 403
    assert [r["code"] for r in halted.json()["reasons"]] == ["change_not_approved"]
    assert DeploymentCheck.objects.filter(decision="deny").count() == 1  # recorded like any other check


def test_flagger_carries_the_question_and_its_token_in_the_webhook_metadata(world, secret):
    assert APIClient().post(FLAGGER, flagger_hook(world, secret), format="json").status_code == 200
    halted = APIClient().post(FLAGGER, flagger_hook(world, secret, artifact="sha256:" + "d" * 64), format="json")
    assert halted.status_code == 403 and halted.json()["reasons"][0]["code"] == "artifact_unknown"
    check = DeploymentCheck.objects.get(decision="allow")
    assert check.asked_by.username == "pipeline"


def test_flagger_without_a_valid_token_is_refused(world, secret):
    assert APIClient().post(FLAGGER, flagger_hook(world, "cbt_forged"), format="json").status_code == 401
    hook = flagger_hook(world, secret)
    del hook["metadata"]["token"]
    assert APIClient().post(FLAGGER, hook, format="json").status_code in (401, 403)
    assert not DeploymentCheck.objects.exists()


@pytest.mark.parametrize(("hook", "field"), [
    ({"name": "payments-api", "namespace": "payments", "phase": "Progressing"}, "metadata"),
    ({"metadata": "change=CHG1"}, "metadata"),
])
def test_a_flagger_hook_without_its_metadata_is_a_400(api, pipeline, world, hook, field):
    response = api.as_user(pipeline).post(FLAGGER, hook, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


def test_a_flagger_hook_with_bad_metadata_names_the_field(world, secret):
    response = APIClient().post(FLAGGER, flagger_hook(world, secret, environment="moon"), format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "environment"
