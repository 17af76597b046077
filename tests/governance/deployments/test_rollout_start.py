"""Starting a deployment Changeboard runs: only for an approved change inside its window, outside hard freezes and
lockdowns, with the rehearsal the plan asks for, by a release manager. A refusal gives its reasons with the field,
is in the ledger, and writes nothing else. One deployment at a time per service and environment: others queue."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from governance.calendar.services import lockdown_declare, window_occurrences_refresh
from governance.core.errors import Conflict, DomainError, Forbidden, InvalidInput
from governance.deployments.services import (
    deployment_abort,
    deployment_pause,
    deployment_resume,
    deployment_wave_approve,
    rollout_start,
)
from governance.models import AuditCapture, ChangeStatus, FreezeWindow
from releases.models import (
    Deployment,
    DeploymentPlan,
    DeploymentStatus,
    GatePolicy,
    PlanWave,
    Promotion,
    RolloutStep,
)
from releases.services import deployment_end
from tests.factories import make_environment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]


def refusal(world, actor) -> DomainError:
    with pytest.raises(DomainError) as caught:
        rollout_start(actor=actor, change=world.change, plan=world.plan, artifact=world.new)
    return caught.value


def assert_refused_and_recorded(world, error: DomainError, code: str, field: str) -> None:
    assert code in [e["code"] for e in error.as_errors()]
    assert {e["field"] for e in error.as_errors() if e["code"] == code} == {field}
    assert not Deployment.objects.filter(kind="run").exists()
    assert not RolloutStep.objects.exists()
    recorded = AuditCapture.objects.get(action="deployment_refused")
    assert recorded.object_label == str(world.change)
    assert code in [reason["code"] for reason in recorded.context["reasons"]]
    assert recorded.context["artifact"] == world.new.digest


def _freeze(environment) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    freeze = FreezeWindow.objects.create(name="Black Friday", severity="hard", timezone="UTC", recurrence="once",
                                         start_date=start.date(), start_time=start.time(), duration_minutes=600)
    freeze.environments.set([environment])
    window_occurrences_refresh(freeze)


def _set(obj, **fields) -> None:
    type(obj).objects.filter(pk=obj.pk).update(**fields)
    obj.refresh_from_db()


@pytest.mark.parametrize(("breakage", "code", "message"), [
    (lambda w, rm: _set(w.change, status=ChangeStatus.CAB_REVIEW), "change_not_approved",
     "is CAB review, not approved"),
    (lambda w, rm: _set(w.change, planned_start=datetime.now(UTC) + timedelta(hours=3),
                        planned_end=datetime.now(UTC) + timedelta(hours=4)), "outside_window", "outside the window"),
    (lambda w, rm: _freeze(w.plan.environment), "hard_freeze", "The hard freeze Black Friday is on"),
    (lambda w, rm: lockdown_declare(actor=rm, reason="INC-5 outage", scope={"everything": True}), "lockdown",
     "A lockdown stops the line: INC-5 outage."),
], ids=["unapproved", "outside-window", "hard-freeze", "lockdown"])
def test_a_start_the_gate_would_deny_is_refused_with_its_reason_recorded_and_nothing_written(
        deploy_world, release_manager, breakage, code, message):
    breakage(deploy_world, release_manager)
    error = refusal(deploy_world, release_manager)
    assert isinstance(error, Conflict)
    assert_refused_and_recorded(deploy_world, error, code, "change")
    assert any(message in e["message"] for e in error.as_errors())


def test_production_without_a_rehearsed_rollback_is_refused(deploy_world, release_manager):
    world = deploy_world
    prod = make_environment("prod", 2, is_production=True)
    GatePolicy.objects.create(environment=prod, require_signature=False)
    Promotion.objects.create(artifact=world.new, environment=world.plan.environment, recorded_by=release_manager)
    staging_plan = world.plan
    world.plan = DeploymentPlan.objects.create(service=world.plan.service, environment=prod, require_rehearsal=True,
                                               executor_settings=world.plan.executor_settings)
    PlanWave.objects.create(plan=world.plan, position=1, name="all", targets=["prod-1"])
    _set(world.change, environment=prod)
    error = refusal(world, release_manager)
    assert (error.code, error.field) == ("rehearsal_missing", "plan")
    assert error.message.endswith("shop-api 1.1.0 was never rolled back in a pre-production environment.")
    assert [e["code"] for e in error.as_errors()] == ["rehearsal_missing"]
    assert_refused_and_recorded(world, error, "rehearsal_missing", "plan")

    # Rehearsed: a deployment of the same build rolled back in staging.
    Deployment.objects.create(kind="run", plan=staging_plan, service=staging_plan.service,
                              environment=staging_plan.environment, artifact=world.new,
                              status=DeploymentStatus.ROLLED_BACK, reported_by=release_manager)
    assert rollout_start(actor=release_manager, change=world.change, plan=world.plan,
                         artifact=world.new).status == DeploymentStatus.STARTED


@pytest.mark.parametrize("who", ["requester", "cab_member", "auditor", "outsider"])
def test_only_a_release_manager_starts_a_deployment(deploy_world, request, who):
    error = refusal(deploy_world, request.getfixturevalue(who))
    assert isinstance(error, Forbidden)
    assert not Deployment.objects.filter(kind="run").exists()
    assert AuditCapture.objects.filter(action="deployment_refused").count() == 1


def test_a_plan_with_bad_executor_settings_is_refused_naming_the_plan(deploy_world, release_manager):
    _set(deploy_world.plan, executor_settings={"forward": "deploy.sh", "backward": ["b"]})
    error = refusal(deploy_world, release_manager)
    assert (error.code, error.field) == ("plan_invalid", "plan")
    assert "forward must be a list of arguments" in error.message


def test_a_start_creates_its_steps_and_sends_the_first_task_after_commit(deploy_world, release_manager, sent,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deployment = rollout_start(actor=release_manager, change=deploy_world.change, plan=deploy_world.plan,
                                   artifact=deploy_world.new)
        assert sent == []  # nothing is sent before the transaction commits
    assert sent == [deployment.pk]
    assert deployment.number.startswith("DEP") and deployment.kind == "run"
    steps = list(RolloutStep.objects.filter(deployment=deployment).order_by("sequence"))
    assert [(s.wave_position, s.kind) for s in steps] == [
        (wave, kind) for wave in (1, 2, 3) for kind in ("pre_check", "rollout", "smoke")]
    assert steps[1].idempotency_key == f"{deployment.number}-002-rollout"
    assert {s.state for s in steps} == {"pending"} and not any(s.unsafe_to_repeat for s in steps)
    deploy_world.change.refresh_from_db()
    assert deploy_world.change.status == ChangeStatus.IMPLEMENTING


def test_a_second_start_queues_and_an_abort_of_the_queued_one_ends_it_at_once(deploy_world, release_manager):
    first = rollout_start(actor=release_manager, change=deploy_world.change, plan=deploy_world.plan,
                          artifact=deploy_world.new)
    second = rollout_start(actor=release_manager, change=deploy_world.change, plan=deploy_world.plan,
                           artifact=deploy_world.new)
    assert (first.status, second.status) == (DeploymentStatus.STARTED, DeploymentStatus.QUEUED)
    aborted = deployment_abort(actor=release_manager, deployment=second, reason="superseded by the first")
    assert aborted.status == DeploymentStatus.ABORTED
    assert set(RolloutStep.objects.filter(deployment=second).values_list("state", flat=True)) == {"skipped"}


def test_the_database_holds_one_running_deployment_per_service_and_environment(deploy_world, release_manager):
    rollout_start(actor=release_manager, change=deploy_world.change, plan=deploy_world.plan, artifact=deploy_world.new)
    with pytest.raises(IntegrityError), transaction.atomic():
        Deployment.objects.create(kind="run", plan=deploy_world.plan, service=deploy_world.plan.service,
                                  environment=deploy_world.plan.environment, artifact=deploy_world.new,
                                  status=DeploymentStatus.PAUSED, reported_by=release_manager)


def test_pause_resume_and_approve_are_for_release_managers_and_follow_the_table(deploy_world, release_manager,
                                                                                requester):
    PlanWave.objects.filter(plan=deploy_world.plan, position=1).update(manual_gate=True)
    deployment = rollout_start(actor=release_manager, change=deploy_world.change, plan=deploy_world.plan,
                               artifact=deploy_world.new)
    for service in (deployment_pause, deployment_resume, deployment_wave_approve):
        with pytest.raises(Forbidden):
            service(actor=requester, deployment=deployment)
    with pytest.raises(Forbidden):
        deployment_abort(actor=requester, deployment=deployment, reason="I want it stopped")
    with pytest.raises(InvalidInput) as blank:  # a release manager says why
        deployment_abort(actor=release_manager, deployment=deployment, reason="  ")
    assert blank.value.field == "reason"
    with pytest.raises(Conflict, match="cannot go from started to started"):
        deployment_resume(actor=release_manager, deployment=deployment)
    for bad in ("x" * 1001, "checking\x00dashboards"):  # refused whole, not cut or cleaned
        with pytest.raises(InvalidInput) as refused:
            deployment_pause(actor=release_manager, deployment=deployment, reason=bad)
        assert refused.value.field == "reason"
    assert Deployment.objects.get(pk=deployment.pk).status == DeploymentStatus.STARTED
    paused = deployment_pause(actor=release_manager, deployment=deployment, reason="checking dashboards")
    assert (paused.status, paused.halt_reason) == (DeploymentStatus.PAUSED, "checking dashboards")
    approval = deployment_wave_approve(actor=release_manager, deployment=deployment)
    assert (approval.kind, approval.state, approval.output) == ("manual_gate", "succeeded",
                                                                "Approved by release_manager.")
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STARTED and deployment.halt_reason == ""
    with pytest.raises(DomainError, match="no wave waiting for approval"):
        deployment_wave_approve(actor=release_manager, deployment=deployment)


def test_a_deployment_changeboard_runs_is_not_ended_by_a_pipelines_report(deploy_world, release_manager):
    deployment = rollout_start(actor=release_manager, change=deploy_world.change, plan=deploy_world.plan,
                               artifact=deploy_world.new)
    with pytest.raises(Conflict) as caught:
        deployment_end(deployment, DeploymentStatus.SUCCEEDED)
    assert (caught.value.code, caught.value.field) == ("run_by_changeboard", "deployment")
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STARTED
