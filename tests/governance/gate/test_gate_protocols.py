"""The same decision through the gates of progressive delivery tools. Flagger's confirm-* hooks and a step that
reads only the status get 200 to proceed and 403 to halt; an Argo Rollouts web metric, which counts any status but
2xx as an error, gets the decision in a 200 and judges it with its successCondition, as the README's
AnalysisTemplate says."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from rest_framework.test import APIClient

from governance.access.services import api_token_create
from governance.models import ChangeStatus, DeploymentCheck
from tests.governance.gate.gate_world import CHECKS, question

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


def readme_analysis_metric() -> dict:
    """The web metric of the README's Argo Rollouts AnalysisTemplate."""
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "kind: AnalysisTemplate" in b]
    [metric] = yaml.safe_load(block)["spec"]["metrics"]
    return metric


def test_an_argo_rollouts_web_metric_as_the_readme_writes_it_gets_the_decision_in_a_200_either_way(api, pipeline,
                                                                                                    world):
    metric = readme_analysis_metric()
    web = metric["provider"]["web"]
    assert (urlsplit(web["url"]).path, web["method"], web["jsonPath"]) == (CHECKS, "POST", "{$}")
    assert set(web["jsonBody"]) == set(question(world)) and metric["failureLimit"] == 0
    # With jsonPath {$} the result is the whole answer; the condition reads its decision.
    assert metric["successCondition"] == 'result.decision == "allow"'
    client = api.as_user(pipeline)
    allowed = client.post(CHECKS, question(world), format="json")
    assert allowed.status_code == 200 and allowed.json()["decision"] == "allow"
    world["change"].status = ChangeStatus.CAB_REVIEW
    world["change"].save()
    # A deny is a measurement that fails the condition, not an error: Argo ends the analysis Failed, and the
    # measurement's value, the whole answer, holds the reasons.
    denied = client.post(CHECKS, question(world), format="json")
    assert denied.status_code == 200 and denied.json()["decision"] == "deny"
    assert [r["code"] for r in denied.json()["reasons"]] == ["change_not_approved"]
    assert DeploymentCheck.objects.filter(decision="deny").count() == 1  # recorded like any other check


def test_an_argo_metric_whose_token_is_unknown_or_may_not_ask_is_an_error_not_a_decision(api, world, outsider):
    assert APIClient().post(CHECKS, question(world), format="json").status_code == 401
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer cbt_forged")
    assert forged.post(CHECKS, question(world), format="json").status_code == 401
    assert api.as_user(outsider).post(CHECKS, question(world), format="json").status_code == 403
    assert not DeploymentCheck.objects.exists()


def test_a_step_that_reads_only_the_status_gets_200_to_proceed_and_403_to_halt(api, pipeline, world):
    client = api.as_user(pipeline)
    allowed = client.post(STATUS, question(world), format="json")
    assert allowed.status_code == 200 and allowed.json()["decision"] == "allow"
    world["change"].status = ChangeStatus.CAB_REVIEW
    world["change"].save()
    halted = client.post(STATUS, question(world), format="json")
    assert halted.status_code == 403
    assert [r["code"] for r in halted.json()["reasons"]] == ["change_not_approved"]
    assert DeploymentCheck.objects.filter(decision="deny").count() == 1  # recorded like any other check


def test_a_flagger_hook_built_as_the_schema_declares_it_is_the_one_the_gate_reads(world, secret):
    schema = APIClient().get("/api/schema/?format=json").json()
    operation = schema["paths"][FLAGGER]["post"]
    assert list(operation["requestBody"]["content"]) == ["application/json"]
    components = schema["components"]["schemas"]
    body = components[operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert body["required"] == ["metadata"]
    metadata = components[body["properties"]["metadata"]["$ref"].split("/")[-1]]
    assert set(metadata["required"]) == set(question(world)) and "token" in metadata["properties"]
    hook = {"name": "payments-api", "namespace": "payments", "phase": "Progressing", "checksum": "",
            "metadata": {**question(world), "token": secret}}
    assert set(hook) <= set(body["properties"]) and set(hook["metadata"]) <= set(metadata["properties"])
    assert APIClient().post(FLAGGER, hook, format="json").status_code == 200


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
