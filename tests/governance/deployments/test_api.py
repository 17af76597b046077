"""The deployments API: readers read deployments, their waves, steps, checks and log; release managers start,
pause, resume, abort and approve the next wave, through the same services as the pages. Bad input is a 400 naming
the field, and writes nothing."""

import pytest
from rest_framework.test import APIClient

from governance.models import AuditCapture
from releases.models import Deployment, DeploymentStatus, PlanWave, RolloutStep

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]


def start(api, world, user, **override):
    body = {"change": world.change.number, "plan": world.plan.pk, "artifact": world.new.digest, **override}
    return api.as_user(user).post("/api/v1/rollouts/", body, format="json")


def fields(response) -> set[str]:
    return {error["field"] for error in response.json()["errors"]}


def test_a_release_manager_starts_a_deployment_and_reads_its_waves_and_steps(api, deploy_world, release_manager):
    response = start(api, deploy_world, release_manager)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "started" and body["kind"] == "run" and body["plan"] == deploy_world.plan.pk
    assert body["number"].startswith("DEP") and body["artifact"] == deploy_world.new.digest
    assert [wave["name"] for wave in body["waves"]] == ["canary", "eu-west", "us-east"]
    assert [step["kind"] for step in body["waves"][0]["steps"]] == ["pre_check", "rollout", "smoke"]
    assert body["checks"][0]["name"] == "health" and body["log"] == []

    read = api.as_user(release_manager).get(f"/api/v1/rollouts/{body['number']}/")
    assert read.status_code == 200 and read.json()["waves"] == body["waves"]


def test_the_log_holds_each_step_that_ran_with_its_output(api, deploy_world, release_manager, auditor):
    number = start(api, deploy_world, release_manager).json()["number"]
    RolloutStep.objects.filter(deployment__number=number, sequence=1).update(
        state="succeeded", output="canary: ok (200, 12 ms)", started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:02Z")
    body = api.as_user(auditor).get(f"/api/v1/rollouts/{number}/").json()
    assert body["log"] == [{"sequence": 1, "wave_name": "canary", "kind": "pre_check", "state": "succeeded",
                            "finished_at": "2026-01-01T00:00:02Z", "output": "canary: ok (200, 12 ms)"}]
    assert body["waves"][0]["steps"][0]["duration_seconds"] == 2.0


def test_pause_resume_and_abort_with_a_reason(api, deploy_world, release_manager):
    number = start(api, deploy_world, release_manager).json()["number"]
    client = api.as_user(release_manager)
    paused = client.post(f"/api/v1/rollouts/{number}/pause/", {"reason": "Looking at a graph"}, format="json")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused.json()["halt_reason"] == "Looking at a graph"
    assert client.post(f"/api/v1/rollouts/{number}/pause/", {}, format="json").status_code == 409
    resumed = client.post(f"/api/v1/rollouts/{number}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "started"
    no_reason = client.post(f"/api/v1/rollouts/{number}/abort/", {}, format="json")
    assert no_reason.status_code == 400 and fields(no_reason) == {"reason"}
    aborted = client.post(f"/api/v1/rollouts/{number}/abort/", {"reason": "Wrong build"}, format="json")
    assert aborted.status_code == 200 and aborted.json()["status"] == "aborted"
    assert aborted.json()["aborted_by"] == release_manager.username
    assert aborted.json()["halt_reason"] == f"Aborted by {release_manager.username}: Wrong build"


def test_approve_next_wave_lets_the_waiting_wave_run(api, deploy_world, release_manager):
    PlanWave.objects.filter(plan=deploy_world.plan, position=1).update(manual_gate=True)
    number = start(api, deploy_world, release_manager).json()["number"]
    client = api.as_user(release_manager)
    Deployment.objects.filter(number=number).update(status=DeploymentStatus.PAUSED)
    approved = client.post(f"/api/v1/rollouts/{number}/approve-next-wave/")
    assert approved.status_code == 200, approved.content
    assert approved.json()["waves"][0]["steps"][0]["state"] == "succeeded"
    again = client.post(f"/api/v1/rollouts/{number}/approve-next-wave/")
    assert again.status_code == 400 and fields(again) == {"deployment"}


def test_without_the_release_manager_role_nothing_starts_or_moves(api, deploy_world, release_manager, auditor,
                                                                  requester, outsider):
    number = start(api, deploy_world, release_manager).json()["number"]
    for user in (auditor, requester):
        assert start(api, deploy_world, user).status_code == 403
        for move in ("pause", "resume", "abort", "approve-next-wave"):
            answer = api.as_user(user).post(f"/api/v1/rollouts/{number}/{move}/", {"reason": "x"}, format="json")
            assert answer.status_code == 403, (user, move)
    assert api.as_user(outsider).get("/api/v1/rollouts/").status_code == 403
    assert api.as_user(outsider).get(f"/api/v1/rollouts/{number}/").status_code == 403
    assert api.get("/api/v1/rollouts/").status_code in (401, 403)
    assert Deployment.objects.filter(kind="run").count() == 1


@pytest.mark.parametrize(("override", "field"), [
    ({"plan": 999999}, "plan"), ({"plan": "one"}, "plan"), ({"plan": 2**40}, "plan"), ({"plan": None}, "plan"),
    ({"change": "CHG\x000001"}, "change"), ({"change": "x" * 100_000}, "change"), ({"change": 7}, "change"),
    ({"change": "CHG9999999"}, "change"), ({"artifact": "sha256:" + "0" * 64}, "artifact"),
    ({"artifact": ["a"]}, "artifact"), ({"surprise": 1}, "surprise"),
])
def test_bad_input_to_a_start_names_the_field_and_writes_nothing(api, deploy_world, release_manager, override,
                                                                 field):
    client = APIClient()
    client.force_login(release_manager)  # a session: a token's use would be recorded
    written = AuditCapture.objects.count()
    body = {"change": deploy_world.change.number, "plan": deploy_world.plan.pk, "artifact": deploy_world.new.digest,
            **override}
    response = client.post("/api/v1/rollouts/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in fields(response)
    assert not Deployment.objects.filter(kind="run").exists() and not RolloutStep.objects.exists()
    assert AuditCapture.objects.count() == written


def test_a_refused_start_gives_every_reason_and_writes_nothing_but_the_ledger(api, deploy_world, release_manager):
    deploy_world.change.status = "draft"
    deploy_world.change.save()
    response = start(api, deploy_world, release_manager)
    assert response.status_code == 409
    assert not Deployment.objects.filter(kind="run").exists()


def test_the_list_filters_by_service_environment_status_and_kind(api, deploy_world, release_manager, auditor,
                                                                  django_assert_max_num_queries):
    start(api, deploy_world, release_manager)
    start(api, deploy_world, release_manager)  # queued behind the first
    client = api.as_user(auditor)
    client.get("/api/v1/rollouts/")  # the token's first use writes; not counted below
    with django_assert_max_num_queries(7):
        everything = client.get("/api/v1/rollouts/").json()
    with django_assert_max_num_queries(9):  # the steps, waves and checks in one query each, however many
        assert client.get(f"/api/v1/rollouts/{everything['results'][0]['number']}/").status_code == 200
    assert everything["count"] == 3  # the pipeline's earlier deployment too
    assert [d["status"] for d in client.get("/api/v1/rollouts/?kind=run").json()["results"]] == ["queued", "started"]
    assert client.get("/api/v1/rollouts/?status=queued&service=shop-api&environment=staging").json()["count"] == 1
    assert client.get("/api/v1/rollouts/?service=nothing").json()["count"] == 0
    bad = client.get("/api/v1/rollouts/?status=sideways")
    assert bad.status_code == 400 and fields(bad) == {"status"}


def test_the_plans_list_names_each_plans_waves(api, deploy_world, auditor):
    body = api.as_user(auditor).get("/api/v1/deployment-plans/").json()
    assert body["results"][0]["waves"] == ["canary", "eu-west", "us-east"]
    assert body["results"][0]["service"] == "shop-api"
