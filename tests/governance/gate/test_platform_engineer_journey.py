"""The platform engineer's journey, from outside Changeboard and by its published documents only: a Python client
generated from the schema the server publishes (/api/schema/) imports whole, raises a change and asks the gate;
then GitHub asks, as its schema says it asks, about the two services one repository builds, told apart by the
GitHub environment each job deploys to."""

import importlib
import os
import pkgutil
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from governance.access.services import api_token_create
from governance.models import DeploymentCheck
from governance.roles import Role
from releases.models import Artifact
from tests.factories import make_ci, make_user
from tests.governance.gate.gate_world import DIGEST
from tests.governance.gate.github_world import (
    DEPLOYMENT_FIELDS,
    PROTECTION_RULE_FIELDS,
    SHA,
    answer,
    deliver,
    deployment_object,
    payload,
)

CLIENT = "changeboard_client"


@pytest.fixture
def generated_client(live_server, tmp_path, monkeypatch):
    """The package openapi-python-client generates from the schema the live server publishes; offline, as the
    generation reads only the schema file."""
    schema = tmp_path / "schema.yaml"
    with urllib.request.urlopen(f"{live_server.url}/api/schema/", timeout=30) as response:  # noqa: S310 (the test's)
        schema.write_bytes(response.read())
    tools = Path(sys.executable).parent  # the generator, and the ruff it formats its output with
    generated = subprocess.run(
        [str(tools / "openapi-python-client"), "generate", "--path", str(schema), "--meta", "none",
         "--output-path", str(tmp_path / CLIENT), "--fail-on-warning"],
        cwd=tmp_path, env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(CLIENT)
    for name in [name for name in sys.modules if name == CLIENT or name.startswith(f"{CLIENT}.")]:
        del sys.modules[name]


def token_of(user: User) -> str:
    return api_token_create(actor=user, owner=user, name="journey").secret


@pytest.mark.django_db(transaction=True)
def test_a_client_generated_from_the_schema_imports_whole_raises_a_change_and_asks_the_gate(
    migration_data, live_server, world, pipeline, generated_client
):
    modules = [module.name for module in pkgutil.walk_packages(generated_client.__path__, f"{CLIENT}.")]
    refused = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # every module must import: name each one that does not, with why
            refused[name] = repr(error)
    assert not refused, refused
    assert f"{CLIENT}.api.gate.v1_deployment_checks_create" in modules and len(modules) > 150
    models = importlib.import_module(f"{CLIENT}.models")
    changes_create = importlib.import_module(f"{CLIENT}.api.changes.v1_changes_create")
    deployment_checks_create = importlib.import_module(f"{CLIENT}.api.gate.v1_deployment_checks_create")

    requester = world["change"].requester
    as_requester = generated_client.AuthenticatedClient(base_url=live_server.url, token=token_of(requester))
    now = datetime.now(UTC)
    raised = changes_create.sync_detailed(
        client=as_requester,
        body=models.ChangeRequestInputRequest(
            title="payments-api 4.2.0 to prod", environment="prod", affected_cis=["payments-api"],
            planned_start=now + timedelta(days=2), planned_end=now + timedelta(days=2, hours=1),
            implementation_plan="Roll out 4.2.0.", backout_plan="Roll back to 4.1.0.",
        ),
    )  # fmt: skip
    assert raised.status_code == HTTPStatus.CREATED, raised.content
    change = raised.parsed
    assert isinstance(change, models.ChangeRequestDetail)
    assert (change.status, change.affected_cis) == (models.ChangeStatusEnum.DRAFT, ["payments-api"])

    as_pipeline = generated_client.AuthenticatedClient(base_url=live_server.url, token=token_of(pipeline))

    def ask(number: str):
        question = models.CheckRequestRequest(change=number, service="payments-api", environment="prod",
                                              artifact=DIGEST)  # fmt: skip
        answered = deployment_checks_create.sync_detailed(client=as_pipeline, body=question)
        assert answered.status_code == HTTPStatus.OK, answered.content
        assert isinstance(answered.parsed, models.CheckAnswer)
        return answered.parsed

    denied = ask(change.number)  # a draft: nobody has approved it
    assert denied.decision == models.GateDecisionEnum.DENY
    reasons = {reason["code"]: reason["message"] for reason in denied.reasons}
    assert "change_not_approved" in reasons and all(reasons.values())
    allowed = ask(world["change"].number)  # implementing, in its window, for a promoted and signed build
    assert (allowed.decision, allowed.reasons) == (models.GateDecisionEnum.ALLOW, [])
    checks = DeploymentCheck.objects.order_by("asked_at")
    assert [(str(check.pk), check.decision) for check in checks] == [
        (str(denied.check_id), "deny"), (str(allowed.check_id), "allow")
    ]  # fmt: skip


@pytest.fixture
def monorepo(world, api, admin_user):
    """One repository building two services: payments-api, whose change is in its window and whose build is
    registered, and payments-batch, which has neither. The engineer maps each service's GitHub environment through
    the API, as the README says."""
    make_user("github", Role.SERVICE_ACCOUNT)
    batch = make_ci("payments-batch", team=world["team"])
    Artifact.objects.filter(pk=world["artifact"].pk).update(source_commit=SHA)
    as_admin = api.as_user(admin_user)
    for service, environment in ((world["service"], "payments-api-prod"), (batch, "payments-batch-prod")):
        mapped = as_admin.patch(
            f"/api/v1/cis/{service.pk}/",
            {"github_repository": "octo-bank/payments", "github_environments": {environment: "prod"}},
            format="json",
        )
        assert mapped.status_code == 200, mapped.content
    return world


def delivery(github, environment: str) -> dict:
    """What GitHub sends when a job of octo-bank/payments waits on its environment: a deployment GitHub Actions
    created, with an empty payload."""
    body = payload(github, repository="octo-bank/payments", environment=environment,
                   deployment=deployment_object(repository="octo-bank/payments", environment=environment))  # fmt: skip
    assert set(body) <= PROTECTION_RULE_FIELDS and set(body["deployment"]) <= DEPLOYMENT_FIELDS
    assert body["deployment"]["payload"] == {}
    return body


@pytest.mark.django_db
def test_github_asks_about_each_service_of_one_repository_by_the_environment_its_job_deploys_to(monorepo, github):
    api_review = answer(deliver(delivery(github, "payments-api-prod")))
    batch_review = answer(deliver(delivery(github, "payments-batch-prod")))
    unmapped_review = answer(deliver(delivery(github, "prod")))

    [api_call, batch_call, unmapped_call] = github.reviews()
    assert api_call["body"]["environment_name"] == "payments-api-prod" and api_call["body"]["state"] == "approved"
    assert monorepo["change"].number in api_call["body"]["comment"] and DIGEST in api_call["body"]["comment"]
    api_check = DeploymentCheck.objects.get(pk=api_review.gate_check_id)
    assert (api_check.decision, api_check.service.name, api_check.environment.name) == (
        "allow", "payments-api", "prod"
    )  # fmt: skip

    assert batch_call["body"]["state"] == "rejected" and batch_review.state == "rejected"
    batch_check = DeploymentCheck.objects.get(pk=batch_review.gate_check_id)
    assert batch_check.service.name == "payments-batch"
    assert {reason["code"] for reason in batch_check.reasons} >= {"change_missing", "artifact_unknown"}
    for reason in batch_check.reasons:
        assert reason["message"] in batch_call["body"]["comment"]

    # A GitHub environment that neither service maps cannot say which one it deploys: refused, saying so.
    assert unmapped_call["body"]["state"] == "rejected" and unmapped_review.gate_check_id is None
    assert "none maps the GitHub environment prod" in unmapped_call["body"]["comment"]
    assert all(review.answered_at for review in (api_review, batch_review, unmapped_review))
