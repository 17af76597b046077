"""The engine's promises, one step at a time in this process: a step held under a live lease is left alone, a lapsed
one is taken over as the next attempt and a late worker's result is refused; a step unsafe to repeat is checked
rather than run again; a rollback undoes the migration where its schema version allows, and where it does not,
stops and names what a person must do."""

import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.deployments.orchestration import HOOKS, deployments_resume_stalled
from governance.models import ChangeStatus
from releases.engine import _record, advance
from releases.executors import StepResult
from releases.models import DatabaseMigration, Deployment, DeploymentPlan, DeploymentStatus, RolloutStep
from tests.governance.deployments.world import drive, start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]
PY = sys.executable


def lapsed(step: RolloutStep, *, by: str = "vanished-worker") -> None:
    """As if a worker had claimed the step and died: running, attempt 1, its lease run out."""
    RolloutStep.objects.filter(pk=step.pk).update(state="running", lease_owner=by, attempt=1,
                                                  started_at=timezone.now() - timedelta(minutes=2),
                                                  lease_expires_at=timezone.now() - timedelta(seconds=1))


def step(deployment: Deployment, kind: str, wave: str = "canary") -> RolloutStep:
    return RolloutStep.objects.get(deployment=deployment, kind=kind, wave_name=wave)


def test_a_step_held_under_a_live_lease_is_left_alone(deploy_world, release_manager):
    deployment = start(deploy_world, release_manager)
    first = step(deployment, "pre_check")
    RolloutStep.objects.filter(pk=first.pk).update(state="running", lease_owner="busy-worker", attempt=1,
                                                   lease_expires_at=timezone.now() + timedelta(minutes=1))
    assert advance(deployment.pk, owner="test-worker", hooks=HOOKS) == "held by another worker"
    first.refresh_from_db()
    assert (first.state, first.attempt, first.lease_owner) == ("running", 1, "busy-worker")


def test_a_lapsed_step_is_taken_over_as_attempt_two_and_the_late_workers_result_is_refused(deploy_world,
                                                                                           release_manager):
    deployment = start(deploy_world, release_manager)
    rollout = step(deployment, "rollout")
    advance(deployment.pk, owner="test-worker", hooks=HOOKS)  # the checks before wave 1
    lapsed(rollout)
    assert advance(deployment.pk, owner="test-worker", hooks=HOOKS) == "succeeded"
    rollout.refresh_from_db()
    assert (rollout.state, rollout.attempt, rollout.lease_owner) == ("succeeded", 2, "")
    assert deploy_world.waves_in_journal() == [("forward", "canary")]

    # The worker that vanished comes back and reports a failure under its old attempt: it no longer holds the step.
    assert _record(deployment, rollout, 1, StepResult(False, "late"), HOOKS) == "lease lost"
    rollout.refresh_from_db()
    assert rollout.state == "succeeded" and rollout.output != "late"
    assert not RolloutStep.objects.filter(deployment=deployment, kind="rollback_rollout").exists()


@pytest.mark.parametrize(("exit_code", "runs_again", "ends"), [(0, False, "succeeded"), (1, True, "succeeded"),
                                                               (7, False, "failed")])
def test_an_interrupted_rollout_unsafe_to_repeat_is_checked_with_the_executor(deploy_world, release_manager,
                                                                              exit_code, runs_again, ends):
    world = deploy_world
    DeploymentPlan.objects.filter(pk=world.plan.pk).update(rollout_repeatable=False, executor_settings={
        **world.plan.executor_settings, "check": [PY, "-c", f"raise SystemExit({exit_code})"]})
    world.plan.refresh_from_db()
    deployment = start(world, release_manager)
    rollout = step(deployment, "rollout")
    assert rollout.unsafe_to_repeat
    advance(deployment.pk, owner="test-worker", hooks=HOOKS)
    lapsed(rollout)
    assert advance(deployment.pk, owner="test-worker", hooks=HOOKS) == ends
    rollout.refresh_from_db()
    assert (("forward", "canary") in world.waves_in_journal()) is runs_again
    if exit_code == 0:
        assert "not run again" in rollout.output
    if exit_code == 7:
        assert "cannot tell whether it happened" in rollout.output
        assert [s.kind for s in RolloutStep.objects.filter(deployment=deployment, state="pending")] == [
            "rollback_rollout"]


@pytest.mark.parametrize("happened", [True, False])
def test_an_interrupted_rollback_of_a_rollout_unsafe_to_repeat_is_checked_for_the_build_it_puts_back(
        deploy_world, release_manager, happened):
    world = deploy_world
    canary = world.waves["canary"][0]
    # The service's check: exit 0 when the target serves the build the step puts in place.
    check = [PY, "-c", f"import os, sys; sys.exit(open({str(canary.state_file)!r}).read() != "
                       f"os.environ['CB_ARTIFACT_DIGEST'])"]
    DeploymentPlan.objects.filter(pk=world.plan.pk).update(
        rollout_repeatable=False, executor_settings={**world.plan.executor_settings, "check": check})
    canary.broken.add(world.new.digest)
    deployment = start(world, release_manager)
    for _ in ("pre_check", "rollout", "smoke"):  # the smoke test fails: the canary is to be rolled back
        advance(deployment.pk, owner="test-worker", hooks=HOOKS)
    rollback = step(deployment, "rollback_rollout")
    assert rollback.unsafe_to_repeat
    if happened:  # the vanished worker's rollback had put the canary back
        canary.state_file.write_text(world.old.digest)
    lapsed(rollback)
    assert advance(deployment.pk, owner="test-worker", hooks=HOOKS) == "succeeded"
    rollback.refresh_from_db()
    assert (("backward", "canary") in world.waves_in_journal()) is not happened
    assert ("The rollback was interrupted after it happened" in rollback.output) is happened
    assert canary.serves() == world.old.digest


def _migration(world, tmp_path, *, reversible: bool) -> object:
    schema = tmp_path / "schema"
    schema.write_text("41")
    script = tmp_path / "migrate.py"
    script.write_text("import sys; open(sys.argv[1], 'w').write(sys.argv[2]); "
                      "open(sys.argv[3], 'a').write('migrate ' + sys.argv[2] + ' x x\\n')")
    DatabaseMigration.objects.create(
        plan=world.plan, forward=[PY, str(script), str(schema), "42", str(world.journal)], forward_schema_version="42",
        backward=[PY, str(script), str(schema), "41", str(world.journal)] if reversible else [],
        backward_schema_version="41" if reversible else "",
        version_command=[PY, "-c", f"print(open({str(schema)!r}).read())"], timeout_seconds=30)
    return schema


def test_a_rollback_undoes_the_waves_then_the_migration_when_the_schema_allows(deploy_world, release_manager,
                                                                              tmp_path):
    world = deploy_world
    schema = _migration(world, tmp_path, reversible=True)
    world.waves["eu-west"][0].broken.add(world.new.digest)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK
    assert world.waves_in_journal() == [("migrate", "42"), ("forward", "canary"), ("forward", "eu-west"),
                                        ("backward", "eu-west"), ("backward", "canary"), ("migrate", "41")]
    assert schema.read_text() == "41"
    assert [kind for _, kind, _ in RolloutStep.objects.filter(deployment=deployment, kind__startswith="rollback")
            .order_by("sequence").values_list("wave_name", "kind", "state")] == [
        "rollback_rollout", "rollback_rollout", "rollback_migrate"]
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.ROLLED_BACK


def test_a_migration_without_a_backward_command_stops_the_rollback_and_names_the_manual_steps(
        deploy_world, release_manager, tmp_path):
    world = deploy_world
    schema = _migration(world, tmp_path, reversible=False)
    world.waves["canary"][0].broken.add(world.new.digest)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.FAILED
    assert schema.read_text() == "42"
    assert world.waves_in_journal() == [("migrate", "42"), ("forward", "canary")]  # nothing undone by itself
    canary = world.waves["canary"][0].target
    assert deployment.manual_steps == (
        "1. The migration to schema 42 has no backward command: move the schema back by hand.\n"
        f"2. Then put {canary} back on 1.0.0 ({world.old.digest}), wave by wave in that order.")
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.FAILED


def test_an_interrupted_migration_that_happened_is_not_run_again(deploy_world, release_manager, tmp_path):
    world = deploy_world
    schema = _migration(world, tmp_path, reversible=True)
    deployment = start(world, release_manager)
    advance(deployment.pk, owner="test-worker", hooks=HOOKS)  # the checks before wave 1
    migrate = step(deployment, "migrate")
    assert migrate.unsafe_to_repeat
    schema.write_text("42")  # the vanished worker's migration had finished
    lapsed(migrate)
    assert advance(deployment.pk, owner="test-worker", hooks=HOOKS) == "succeeded"
    migrate.refresh_from_db()
    assert migrate.output == "The schema is at 42 already: the interrupted migration happened."
    assert world.waves_in_journal() == []


def test_the_beat_job_resends_a_stalled_deployment_and_starts_a_queued_one_whose_environment_came_free(
        deploy_world, release_manager, sent, django_capture_on_commit_callbacks):
    world = deploy_world
    first = start(world, release_manager)
    second = start(world, release_manager)
    lapsed(step(first, "pre_check"))
    Deployment.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(minutes=5))
    sent.clear()
    assert deployments_resume_stalled() == 1
    assert sent == [first.pk]

    # A live lease is left alone: nothing stalled.
    RolloutStep.objects.filter(deployment=first, kind="pre_check").update(
        lease_expires_at=timezone.now() + timedelta(minutes=1))
    sent.clear()
    assert deployments_resume_stalled() == 0 and sent == []

    # The first ends (say a release manager's abort found nothing to undo): the queued one starts.
    Deployment.objects.filter(pk=first.pk).update(status=DeploymentStatus.FAILED, finished_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert deployments_resume_stalled() == 1
    second.refresh_from_db()
    assert second.status == DeploymentStatus.STARTED and sent == [second.pk]


def test_a_step_that_breaks_fails_and_the_rollout_halts(deploy_world, release_manager):
    deployment = start(deploy_world, release_manager)
    DeploymentPlan.objects.filter(pk=deploy_world.plan.pk).update(executor_settings={"backward": ["rollback"]})
    deployment = drive(deployment)
    assert deployment.status == DeploymentStatus.FAILED
    rollout = step(deployment, "rollout")
    assert rollout.state == "failed" and rollout.output == "The step broke: KeyError: 'forward'"
    # Its rollback breaks the same way: the deployment stops and says what a person must finish.
    assert steps_of_kind(deployment, "rollback_rollout") == [("canary", "failed")]
    assert deployment.manual_steps == ("1. Step 10 (rollback of the wave, wave canary) failed. Check what it left and "
                                       "finish it by hand.")
    deploy_world.change.refresh_from_db()
    assert deploy_world.change.status == ChangeStatus.FAILED


def steps_of_kind(deployment: Deployment, kind: str) -> list[tuple[str, str]]:
    return list(RolloutStep.objects.filter(deployment=deployment, kind=kind).values_list("wave_name", "state"))
