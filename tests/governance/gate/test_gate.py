"""The deployment check pipelines call: allow only when everything holds, and say every reason when not."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from cmdb.models import Environment
from governance.audit.ledger import audit_seal
from governance.calendar.selectors import freezes_covering, lockdowns_covering
from governance.calendar.services import lockdown_declare, window_occurrences_refresh
from governance.core.errors import Forbidden
from governance.gate.facts import gate_facts
from governance.gate.services import deployment_abandon
from governance.models import AuditEvent, ChangeStatus, DeploymentCheck, FreezeWindow, Lockdown
from releases.models import Artifact, Deployment, GatePolicy, Promotion, ScanResult
from tests.factories import make_ci, make_environment
from tests.governance.gate.gate_world import CHECKS, DIGEST

pytestmark = pytest.mark.django_db


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
    (lambda w: _set(w["change"], pinned_digests=["sha256:" + "e" * 64]), "artifact_not_pinned"),
    (lambda w: _live(w, version="4.3.0"), "out_of_order"),
    # Held by a lockdown in force whose scope (databases) does not take in the service: the hold alone denies.
    (lambda w: _set(w["change"], held_by=Lockdown.objects.create(
        reason="INC-9: the change waits for its owner", ci_types=["database"], declared_by=w["artifact"].created_by)),
     "change_on_hold"),
    (lambda w: GatePolicy.objects.create(environment=w["prod"], required_scans=["dast"]), "scan_missing"),
    (lambda w: _scan(w, verdict="warn", critical=1) and GatePolicy.objects.create(
        environment=w["prod"], require_signature=True, max_critical=0), "scan_findings"),
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


def _scan(w, **fields):
    return ScanResult.objects.create(artifact=w["artifact"], kind="dependency", tool="trivy",
                                     recorded_by=w["artifact"].created_by, **fields)


def _live(w, *, version: str) -> Artifact:
    """A build newer than the world's artifact, deployed successfully to prod."""
    newer = Artifact.objects.create(service=w["service"], version=version, digest="sha256:" + "f" * 64,
                                    created_by=w["artifact"].created_by,
                                    created_at=w["artifact"].created_at + timedelta(days=1))
    Deployment.objects.create(service=w["service"], environment=w["prod"], artifact=newer, status="succeeded",
                              check_id=uuid.uuid4(), reported_by=w["artifact"].created_by)
    return newer


def test_a_change_pinned_to_this_build_allows_it(api, pipeline, world):
    _set(world["change"], pinned_digests=["sha256:" + "e" * 64, DIGEST])
    assert ask(api, pipeline, world).json()["decision"] == "allow"


def test_going_back_to_an_older_build_needs_a_rollback_change(api, pipeline, world):
    _live(world, version="4.3.0")
    assert codes(ask(api, pipeline, world)) == ["out_of_order"]
    _set(world["change"], rolls_back=True)
    assert ask(api, pipeline, world).json()["decision"] == "allow"


def test_the_same_build_again_is_not_out_of_order(api, pipeline, world):
    Deployment.objects.create(service=world["service"], environment=world["prod"], artifact=world["artifact"],
                              status="succeeded", check_id=uuid.uuid4(), reported_by=pipeline)
    assert ask(api, pipeline, world).json()["decision"] == "allow"


def test_an_environment_policy_decides_whether_signatures_are_needed(api, pipeline, world):
    _set(world["artifact"], signature_status="unsigned", signature="")
    assert codes(ask(api, pipeline, world)) == ["signature_required"]
    GatePolicy.objects.create(environment=world["prod"], require_signature=False)
    assert ask(api, pipeline, world).json()["decision"] == "allow"


def test_a_policy_may_let_failed_scans_through_but_not_too_many_findings(api, pipeline, world):
    _scan(world, verdict="fail", high=3)
    assert codes(ask(api, pipeline, world)) == ["scan_failed"]
    GatePolicy.objects.create(environment=world["prod"], require_signature=True, block_failed_scans=False,
                              max_high=3)
    assert ask(api, pipeline, world).json()["decision"] == "allow"
    _scan(world, verdict="pass", high=1)
    assert codes(ask(api, pipeline, world)) == ["scan_findings"]


def test_a_required_scan_that_failed_does_not_count_as_done(api, pipeline, world):
    GatePolicy.objects.create(environment=world["prod"], require_signature=True, required_scans=["dependency"])
    _scan(world, verdict="fail")
    assert codes(ask(api, pipeline, world)) == ["scan_failed", "scan_missing"]


def test_a_build_of_another_service_is_denied(api, pipeline, world):
    ledger = make_ci("ledger", team=world["team"])
    other = Artifact.objects.create(service=ledger, version="1.0.0", digest="sha256:" + "b" * 64,
                                    created_by=pipeline, signature_status="valid")
    for environment in (world["staging"], *Environment.objects.filter(name="dev")):
        Promotion.objects.create(artifact=other, environment=environment, recorded_by=pipeline)
    assert codes(ask(api, pipeline, world, artifact=other.digest)) == ["artifact_not_for_service"]


def test_an_unknown_artifact_is_denied(api, pipeline, world):
    assert codes(ask(api, pipeline, world, artifact="sha256:" + "d" * 64)) == ["artifact_unknown"]


def test_every_reason_is_listed_not_only_the_first(api, pipeline, world):
    _set(world["change"], status=ChangeStatus.CAB_REVIEW, environment=world["staging"],
         pinned_digests=["sha256:" + "e" * 64])
    Promotion.objects.filter(environment=world["staging"]).delete()
    _live(world, version="5.0.0")
    _freeze(world["prod"])
    _set(world["artifact"], signature_status="invalid")
    _scan(world, verdict="fail")
    assert codes(ask(api, pipeline, world)) == [
        "change_not_approved", "change_not_for_environment", "artifact_not_pinned", "hard_freeze", "out_of_order",
        "artifact_not_promoted", "signature_required", "scan_failed"]


def test_the_check_takes_a_fixed_number_of_queries(api, pipeline, world, django_assert_max_num_queries):
    client = api.as_user(pipeline)
    ask(api, pipeline, world)  # the token's last use is recorded once a minute at most
    for n in range(3):
        _scan(world, verdict="pass")
        Promotion.objects.get_or_create(artifact=world["artifact"], environment=make_environment(f"e{n}", 10 + n),
                                        recorded_by=pipeline)
    # Whether the token is an auditor's (who writes nothing), the token, the facts (one statement however many
    # scans, promotions, freezes and changes), the answer.
    with django_assert_max_num_queries(4):
        response = client.post(CHECKS, {"change": world["change"].number, "service": "payments-api",
                                        "environment": "prod", "artifact": DIGEST}, format="json")
    assert response.json()["decision"] == "allow"


def test_reporting_a_start_and_an_end_takes_a_fixed_number_of_queries(api, pipeline, world,
                                                                     django_assert_max_num_queries):
    client = api.as_user(pipeline)
    check_id = ask(api, pipeline, world).json()["check_id"]
    # Whether the token is an auditor's (on each write), the token and its ledger event, the check, the facts,
    # whether the check was used, the insert in its savepoint, and the change's move to implementing (found,
    # locked, its facts, the move and its history);
    # then the same first two, the deployment, the pipeline's permissions (two), its locked re-read with what the
    # answer shows of it, the update, and the change's move (whether another deployment of it still runs, then as
    # above), with their savepoints.
    with django_assert_max_num_queries(14):
        started = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert started.status_code == 201
    with django_assert_max_num_queries(22):
        ended = client.post("/api/v1/deployments/", {"deployment": started.json()["number"], "status": "succeeded"},
                            format="json")
    assert ended.json()["status"] == "succeeded"


def test_a_start_reported_after_the_check_expired_is_refused(api, pipeline, world):
    client = api.as_user(pipeline)
    check_id = ask(api, pipeline, world).json()["check_id"]
    DeploymentCheck.objects.filter(pk=check_id).update(valid_until=timezone.now() - timedelta(seconds=1))
    response = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "check_expired"
    assert not Deployment.objects.exists()


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


@pytest.mark.parametrize("body", ["[]", "null", '"CHG0000001"', "{}"])
def test_a_question_that_is_no_object_or_empty_is_a_400(api, pipeline, world, body):
    response = api.as_user(pipeline).post(CHECKS, body, content_type="application/json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and all(error["message"] for error in errors)
    if body == "{}":
        assert {error["field"] for error in errors} == {"change", "service", "environment", "artifact"}
    assert not DeploymentCheck.objects.exists()


def test_only_pipelines_ask_the_gate(api, requester, world):
    body = {"change": world["change"].number, "service": "payments-api", "environment": "prod", "artifact": DIGEST}
    assert api.as_user(requester).post(CHECKS, body, format="json").status_code == 403


def test_every_check_is_recorded_in_the_audit_ledger(api, pipeline, world):
    check_id = ask(api, pipeline, world).json()["check_id"]
    audit_seal()
    [event] = AuditEvent.objects.filter(object_type="governance.deploymentcheck", object_id=check_id)
    assert event.actor_name == "pipeline" and event.actor_kind == "token" and event.token_id is not None
    assert event.changes["decision"] == {"before": None, "after": "allow"}


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
    retried = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert retried.status_code == 200  # the same report again: the same deployment, nothing created
    assert retried.json() == started.json()
    done = client.post("/api/v1/deployments/", {"deployment": started.json()["number"], "status": "succeeded"},
                       format="json")
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    reused = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert reused.status_code == 409 and reused.json()["errors"][0]["code"] == "check_used"
    assert Deployment.objects.count() == 1
    # The environment is free again; the change, carried out, covers no other deployment.
    assert codes(client.post(CHECKS, body, format="json")) == ["change_not_approved"]


def test_a_deployment_ended_by_hand_frees_the_environment_for_the_gate(api, pipeline, world, release_manager):
    client = api.as_user(pipeline)
    body = {"change": world["change"].number, "service": "payments-api", "environment": "prod", "artifact": DIGEST}
    check_id = client.post(CHECKS, body, format="json").json()["check_id"]
    client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert [r["code"] for r in client.post(CHECKS, body, format="json").json()["reasons"]] == ["environment_locked"]
    with pytest.raises(Forbidden):
        deployment_abandon(actor=pipeline, deployment=Deployment.objects.get(), reason="stuck")
    deployment_abandon(actor=release_manager, deployment=Deployment.objects.get(), reason="The runner was lost.")
    assert client.post(CHECKS, body, format="json").json()["decision"] == "allow"
    assert Deployment.objects.get().status == "abandoned"
    ended = client.post("/api/v1/deployments/", {"deployment": Deployment.objects.get().number,
                                                 "status": "abandoned"}, format="json")
    assert ended.status_code == 400 and ended.json()["errors"][0]["field"] == "status"  # a person's act only


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


def test_the_gate_sees_the_freezes_and_lockdowns_the_calendar_sees(world, pipeline, release_manager):
    """The gate reads freezes and lockdowns in its own statement, with the calendar's scope condition: over random
    scopes, both find the same ones."""
    rng = random.Random(20261127)
    now = datetime.now(UTC)
    items = [world["service"], *(make_ci(
        f"ci-{n}", team=world["team"], ci_type=rng.choice(["service", "database"]), criticality=rng.randint(1, 4),
        tags=rng.sample(["a", "b"], rng.randint(0, 2)), sox_scoped=rng.random() < 0.5, phi=rng.random() < 0.3,
        pci=rng.random() < 0.4) for n in range(5))]
    environments = [world["staging"], world["prod"]]
    for n in range(30):
        scope = {name: value for name, value in (
            ("ci_types", ["service"]), ("tags", ["a"]), ("max_criticality", 2), ("sox_scoped", True), ("phi", True),
            ("pci", True)) if rng.random() < 0.25}
        window = FreezeWindow.objects.create(
            name=f"freeze {n}", severity="hard", active=rng.random() < 0.9, timezone="UTC", recurrence="once",
            start_date=(now - timedelta(hours=1)).date(), start_time=(now - timedelta(hours=1)).time(),
            duration_minutes=600, everything=rng.random() < 0.05, **scope)
        window.environments.set(rng.sample(environments, rng.randint(0, 1)))
        window.cis.set(rng.sample(items, rng.choice([0, 0, 1, 3])))
        window_occurrences_refresh(window)
        if n % 6 == 0:
            lockdown_declare(actor=release_manager, reason=f"lockdown {n}", scope=scope or {"everything": True},
                             environments=rng.sample(environments, rng.randint(0, 1)),
                             cis=rng.sample(items, rng.choice([0, 1])))
    found = 0
    for ci in items:
        for environment in environments:
            facts = gate_facts(change="", service=ci.name, environment=environment.name, digest="",
                               user_id=pipeline.pk, token_id=None, at=datetime.now(UTC))
            at = datetime.now(UTC)
            freezes = sorted(hit.freeze.name for hit in freezes_covering([ci], environment.pk, at,
                                                                          at + timedelta(microseconds=1))
                             if hit.freeze.severity == "hard")
            gate_freezes = sorted(hit["name"] for hit in facts.freezes if hit["severity"] == "hard")
            assert gate_freezes == freezes, (ci.name, environment.name)
            lockdowns = [lockdown.reason for lockdown in lockdowns_covering([ci], environment.pk, at)]
            assert sorted(facts.lockdowns) == sorted(lockdowns), (ci.name, environment.name)
            found += len(freezes) + len(lockdowns)
    assert found  # the scopes cover some and miss others


@pytest.mark.parametrize(("since", "reason"), [("lockdown", "lockdown"), ("newer_build_live", "out_of_order"),
                                               ("change_back_in_review", "change_not_approved")])
def test_an_allowed_check_no_longer_starts_a_deployment_once_the_facts_change(api, pipeline, release_manager, world,
                                                                              since, reason):
    client = api.as_user(pipeline)
    check_id = ask(api, pipeline, world).json()["check_id"]
    if since == "lockdown":
        lockdown_declare(actor=release_manager, reason="INC-12", scope={"everything": True})
    elif since == "newer_build_live":
        _live(world, version="4.3.0")
    else:
        _set(world["change"], status=ChangeStatus.CAB_REVIEW)
    response = client.post("/api/v1/deployments/", {"check_id": check_id, "status": "started"}, format="json")
    assert response.status_code == 409
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"check_id"} and errors[0]["code"] == "check_outdated"
    assert {e["code"] for e in errors[1:]} & {"lockdown", "change_on_hold", "out_of_order", "change_not_approved"}
    assert reason in {e["code"] for e in errors[1:]}
    assert not Deployment.objects.filter(check_id=check_id).exists()


def _report(client, **body):
    return client.post("/api/v1/deployments/", body, format="json")


@pytest.mark.parametrize(("end", "change_after"), [("succeeded", ChangeStatus.COMPLETED),
                                                   ("failed", ChangeStatus.FAILED),
                                                   ("rolled_back", ChangeStatus.ROLLED_BACK)])
def test_the_change_follows_the_deployment_a_pipeline_reports(api, pipeline, world, end, change_after):
    client = api.as_user(pipeline)
    change = world["change"]
    _set(change, status=ChangeStatus.APPROVED)
    started = _report(client, check_id=ask(api, pipeline, world).json()["check_id"], status="started")
    change.refresh_from_db()
    assert change.status == ChangeStatus.IMPLEMENTING
    assert _report(client, deployment=started.json()["number"], status=end).status_code == 200
    change.refresh_from_db()
    assert change.status == change_after
    reasons = list(change.status_changes.values_list("to_status", "reason"))
    assert reasons[-2:] == [(ChangeStatus.IMPLEMENTING, f"{started.json()['number']} started"),
                            (change_after, f"{started.json()['number']} {end.replace('_', ' ')}")]


def test_a_change_of_two_services_completes_when_the_last_deployment_ends(api, pipeline, world):
    client = api.as_user(pipeline)
    change = world["change"]
    first = _report(client, check_id=ask(api, pipeline, world).json()["check_id"], status="started").json()["number"]
    ledger_api = make_ci("ledger-api", team=world["team"])
    # ledger-api's own pipeline started under its own allowed check meanwhile.
    check = DeploymentCheck.objects.create(change=change, service=ledger_api, environment=world["prod"],
                                           digest=DIGEST, artifact=world["artifact"], decision="allow",
                                           asked_by=pipeline, valid_until=timezone.now() + timedelta(minutes=5))
    second = Deployment.objects.create(service=ledger_api, environment=world["prod"], artifact=world["artifact"],
                                       change_number=change.number, reported_by=pipeline, check_id=check.pk)
    _report(client, deployment=first, status="succeeded")
    change.refresh_from_db()
    assert change.status == ChangeStatus.IMPLEMENTING  # ledger-api is still deploying under it
    _report(client, deployment=second.number, status="succeeded")
    change.refresh_from_db()
    assert change.status == ChangeStatus.COMPLETED


def test_a_deployment_abandoned_by_hand_leaves_the_change_to_a_person(api, pipeline, world, release_manager):
    client = api.as_user(pipeline)
    _report(client, check_id=ask(api, pipeline, world).json()["check_id"], status="started")
    deployment_abandon(actor=release_manager, deployment=Deployment.objects.get(), reason="The runner was lost.")
    world["change"].refresh_from_db()
    assert world["change"].status == ChangeStatus.IMPLEMENTING
