"""The deployment check pipelines call: allow only when everything holds, and say every reason when not."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.ledger import audit_seal
from governance.calendar.services import lockdown_declare, window_occurrences_refresh
from governance.models import AuditEvent, ChangeStatus, DeploymentCheck, FreezeWindow
from releases.models import Artifact, Promotion, ScanResult
from releases.services import trusted_key_add
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db
CHECKS = "/api/v1/deployment-checks/"
DIGEST = "sha256:" + "c" * 64


@pytest.fixture
def world(admin_user, pipeline):
    team = make_team("payments")
    dev, staging, prod = (make_environment(n, p, is_production=n == "prod")
                          for p, n in enumerate(["dev", "staging", "prod"]))
    service = make_ci("payments-api", team=team, criticality=1)
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = trusted_key_add(actor=admin_user, team=team, name="ci", public_key_pem=pem)
    artifact = Artifact.objects.create(service=service, version="4.2.0", digest=DIGEST, created_by=pipeline,
                                       signature=private.sign(DIGEST.encode()).hex(), signed_by=key,
                                       signature_status="valid")
    for env in (dev, staging):
        Promotion.objects.create(artifact=artifact, environment=env, recorded_by=pipeline)
    now = datetime.now(UTC)
    change = make_change(make_user("rita", "requester"), cis=[service], environment=prod,
                         planned_start=now - timedelta(minutes=10), planned_end=now + timedelta(hours=1),
                         status=ChangeStatus.IMPLEMENTING)
    return {"service": service, "prod": prod, "staging": staging, "artifact": artifact, "change": change,
            "team": team}


def ask(api, pipeline, world, **overrides):
    body = {"change": world["change"].number, "service": "payments-api", "environment": "prod",
            "artifact": DIGEST, **overrides}
    return api.as_user(pipeline).post(CHECKS, body, format="json")


def codes(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [reason["code"] for reason in response.json()["reasons"]]


def test_everything_in_order_is_allowed_for_a_few_minutes(api, pipeline, world):
    response = ask(api, pipeline, world)
    body = response.json()
    assert body["decision"] == "allow" and body["reasons"] == []
    valid_until = datetime.fromisoformat(body["valid_until"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) < valid_until - datetime.now(UTC) <= timedelta(minutes=5)
    assert DeploymentCheck.objects.get(pk=body["check_id"]).decision == "allow"


@pytest.mark.parametrize(("breakage", "code"), [
    (lambda w: _set(w["change"], status=ChangeStatus.CAB_REVIEW), "change_not_approved"),
    (lambda w: w["change"].affected_cis.set([make_ci("other", team=w["team"])]), "change_not_for_service"),
    (lambda w: _set(w["change"], environment=w["staging"]), "change_not_for_environment"),
    (lambda w: _set(w["change"], planned_start=datetime.now(UTC) + timedelta(hours=3),
                    planned_end=datetime.now(UTC) + timedelta(hours=4)), "outside_window"),
    (lambda w: Promotion.objects.filter(environment=w["staging"]).delete(), "artifact_not_promoted"),
    (lambda w: _set(w["artifact"], signature_status="unsigned", signature=""), "signature_required"),
    (lambda w: ScanResult.objects.create(artifact=w["artifact"], kind="sast", tool="semgrep", verdict="fail",
                                         recorded_by=w["artifact"].created_by), "scan_failed"),
    (lambda w: _freeze(w["prod"]), "hard_freeze"),
])
def test_each_reason_alone_denies(api, pipeline, world, breakage, code):
    breakage(world)
    response = ask(api, pipeline, world)
    assert response.json()["decision"] == "deny"
    assert codes(response) == [code]


def test_a_lockdown_denies_from_the_moment_it_is_declared(api, pipeline, release_manager, world):
    assert ask(api, pipeline, world).json()["decision"] == "allow"
    lockdown_declare(actor=release_manager, reason="INC-7 payments outage", scope={"everything": True})
    assert set(codes(ask(api, pipeline, world))) >= {"lockdown", "change_on_hold"}


def test_an_unknown_artifact_is_denied(api, pipeline, world):
    assert codes(ask(api, pipeline, world, artifact="sha256:" + "d" * 64)) == ["artifact_unknown"]


def test_every_reason_is_listed_not_only_the_first(api, pipeline, world):
    _set(world["change"], status=ChangeStatus.CAB_REVIEW, environment=world["staging"])
    Promotion.objects.filter(environment=world["staging"]).delete()
    assert codes(ask(api, pipeline, world)) == ["change_not_approved", "change_not_for_environment",
                                                "artifact_not_promoted"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"change": "CHG9999999"}, "change"), ({"artifact": "sha256:short"}, "artifact"),
    ({"service": "no-such"}, "service"), ({"environment": "moon"}, "environment"), ({"change": 5}, "change"),
    ({"artifact": ["x"]}, "artifact"),
])
def test_bad_input_is_a_400_naming_the_field(api, pipeline, world, overrides, field):
    response = ask(api, pipeline, world, **overrides)
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not DeploymentCheck.objects.exists()


def test_only_pipelines_ask_the_gate(api, requester, world):
    body = {"change": world["change"].number, "service": "payments-api", "environment": "prod", "artifact": DIGEST}
    assert api.as_user(requester).post(CHECKS, body, format="json").status_code == 403


def test_every_check_is_recorded_in_the_audit_ledger(api, pipeline, world):
    check_id = ask(api, pipeline, world).json()["check_id"]
    audit_seal()
    [event] = AuditEvent.objects.filter(object_type="governance.deploymentcheck", object_id=check_id)
    assert event.actor_name == "pipeline" and event.actor_kind == "token"


def _set(obj, **fields):
    for name, value in fields.items():
        setattr(obj, name, value)
    obj.save()


def _freeze(environment):
    now = datetime.now(UTC) - timedelta(hours=1)
    freeze = FreezeWindow.objects.create(name="Payments incident freeze", severity="hard", timezone="UTC",
                                         recurrence="once", start_date=now.date(), start_time=now.time(),
                                         duration_minutes=600)
    freeze.environments.set([environment])
    window_occurrences_refresh(freeze)


def test_a_pipeline_reports_what_ran_and_the_environment_is_held_meanwhile(api, pipeline, world):
    client = api.as_user(pipeline)
    body = {"change": world["change"].number, "service": "payments-api", "environment": "prod", "artifact": DIGEST}
    check_id = client.post(CHECKS, body, format="json").json()["check_id"]
    started = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert started.status_code == 201 and started.json()["number"].startswith("DEP")
    second = client.post(CHECKS, body, format="json").json()
    assert [r["code"] for r in second["reasons"]] == ["environment_locked"]
    reused = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert reused.status_code == 409
    done = client.post("/api/v1/deployments/", {"deployment": started.json()["number"], "status": "succeeded"},
                       format="json")
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert client.post(CHECKS, body, format="json").json()["decision"] == "allow"


def test_a_denied_check_cannot_start_a_deployment(api, pipeline, world):
    _set(world["change"], status=ChangeStatus.CAB_REVIEW)
    client = api.as_user(pipeline)
    body = {"change": world["change"].number, "service": "payments-api", "environment": "prod", "artifact": DIGEST}
    check_id = client.post(CHECKS, body, format="json").json()["check_id"]
    response = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "check_denied"


@pytest.mark.parametrize(("body", "field"), [({"status": "started"}, "check_id"),
                                            ({"status": "succeeded"}, "deployment"),
                                            ({"status": "exploded", "deployment": "DEP0000001"}, "status")])
def test_a_bad_report_is_a_400_naming_the_field(api, pipeline, world, body, field):
    response = api.as_user(pipeline).post("/api/v1/deployments/", body, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
