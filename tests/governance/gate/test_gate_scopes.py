"""A pipeline token scoped to services and environments cannot ask about or report any other (403, recorded)."""

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from governance.access.services import api_token_create
from governance.models import ApiToken, DeploymentCheck
from releases.models import Artifact, Deployment
from tests.factories import make_ci, sealed
from tests.governance.gate.gate_world import CHECKS, DIGEST, question

pytestmark = pytest.mark.django_db


def client_for(pipeline, *, services=(), environments=()) -> APIClient:
    issued = api_token_create(actor=pipeline, owner=pipeline, name=f"scoped-{ApiToken.objects.count()}",
                              services=list(services), environments=list(environments))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    return client


def test_a_token_for_its_own_service_and_environment_asks(pipeline, world):
    client = client_for(pipeline, services=[world["service"]], environments=[world["prod"]])
    assert client.post(CHECKS, question(world), format="json").json()["decision"] == "allow"


@pytest.mark.parametrize("scope", ["service", "environment"])
def test_a_token_cannot_ask_about_another_service_or_environment(pipeline, world, scope):
    other = {"services": [make_ci("ledger", team=world["team"])]} if scope == "service" \
        else {"environments": [world["staging"]]}
    response = client_for(pipeline, **other).post(CHECKS, question(world), format="json")
    assert response.status_code == 403
    [error] = response.json()["errors"]
    assert error["code"] == "token_out_of_scope" and error["field"] == scope
    assert not DeploymentCheck.objects.exists()
    [denial] = sealed(action="permission_denied", actor_name="pipeline")
    assert denial.context["path"] == CHECKS and "not scoped" in denial.context["reason"]


def test_a_token_cannot_report_a_deployment_of_another_service(pipeline, world):
    own = client_for(pipeline, services=[world["service"]])
    check_id = own.post(CHECKS, question(world), format="json").json()["check_id"]
    foreign = client_for(pipeline, services=[make_ci("ledger", team=world["team"])])
    refused = foreign.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert refused.status_code == 403 and not Deployment.objects.exists()
    started = own.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    number = started.json()["number"]
    ended = foreign.post("/api/v1/deployments/", {"deployment": number, "status": "failed"}, format="json")
    assert ended.status_code == 403
    assert Deployment.objects.get(number=number).status == "started"


def test_a_token_cannot_register_promote_or_scan_another_services_builds(pipeline, world):
    ledger = make_ci("ledger", team=world["team"])
    foreign = client_for(pipeline, services=[ledger])
    registered = foreign.post("/api/v1/artifacts/", {"service": "payments-api", "version": "9.9.9",
                                                     "digest": "sha256:" + "9" * 64}, format="json")
    assert registered.status_code == 403 and not Artifact.objects.filter(version="9.9.9").exists()
    url = f"/api/v1/artifacts/{DIGEST}/"
    assert foreign.post(url + "promotions/", {"environment": "prod"}, format="json").status_code == 403
    assert foreign.post(url + "scans/", {"kind": "sast", "tool": "semgrep", "verdict": "pass"},
                        format="json").status_code == 403
    staging_only = client_for(pipeline, environments=[world["staging"]])
    assert staging_only.post(url + "promotions/", {"environment": "prod"}, format="json").status_code == 403


def test_the_command_issues_a_scoped_token(pipeline, world):
    out = io.StringIO()
    call_command("create_api_token", "pipeline", "--name", "deploy-payments", "--service", "Payments-API",
                 "--environment", "prod", stdout=out, stderr=io.StringIO())
    token = ApiToken.objects.get(name="deploy-payments")
    assert list(token.services.all()) == [world["service"]] and list(token.environments.all()) == [world["prod"]]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    assert client.post(CHECKS, question(world), format="json").status_code == 200


@pytest.mark.parametrize(("option", "name"), [("--service", "no-such-service"), ("--environment", "Prod")])
def test_the_command_refuses_a_scope_naming_nothing_and_issues_no_token(pipeline, world, option, name):
    with pytest.raises(CommandError, match=f"No service or environment is named '{name}'"):
        call_command("create_api_token", "pipeline", "--name", "deploy", option, name, stdout=io.StringIO(),
                     stderr=io.StringIO())  # environments are named exactly, as the gate names them
    assert not ApiToken.objects.filter(name="deploy").exists()


def test_a_token_whose_scoped_service_was_deleted_acts_for_none(pipeline, world):
    doomed = make_ci("tempsvc", team=world["team"])
    client = client_for(pipeline, services=[doomed])
    doomed.delete()
    response = client.post(CHECKS, question(world), format="json")
    assert response.status_code == 403 and response.json()["errors"][0]["field"] == "service"


def test_an_administrator_scopes_a_token_in_the_admin(client, pipeline, world, admin_user):
    issued = api_token_create(actor=pipeline, owner=pipeline, name="ci")
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    response = client.post(f"/admin/governance/apitoken/{issued.token.pk}/change/",
                           {"services": [make_ci("ledger", team=world["team"]).pk], "environments": [],
                            "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:1500]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    refused = bearer.post(CHECKS, question(world), format="json")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "service"
    issued.token.refresh_from_db()
    assert issued.token.services_scoped and not issued.token.environments_scoped
    assert [ci.name for ci in issued.token.services.all()] == ["ledger"]
