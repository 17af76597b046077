"""Deployments run end to end by a real Celery worker on Redis, with the command executor against small HTTP
services whose build the deployment really changes."""

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from governance.audit.context import Actor, acting_as
from governance.audit.ledger import audit_seal
from governance.calendar.services import lockdown_declare
from governance.deployments.services import deployment_abort, rollout_start
from governance.models import AuditEvent, ChangeStatus
from releases.models import Deployment, DeploymentPlan, DeploymentStatus, PlanWave, RolloutStep
from tests.governance.deployments.world import ended, steps_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_three_waves_deploy_the_new_build_to_every_target_and_complete_the_change(
        migration_data, celery_worker_process, deploy_world, release_manager):
    world = deploy_world
    with acting_as(Actor(kind="user", name="release_manager", user_id=release_manager.pk)):
        deployment = rollout_start(actor=release_manager, change=world.change, plan=world.plan, artifact=world.new)
    assert deployment.status == DeploymentStatus.STARTED and deployment.previous_artifact == world.old
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.IMPLEMENTING

    assert wait_for("the deployment to end", lambda: ended(deployment)).status == DeploymentStatus.SUCCEEDED
    assert [server.serves() for server in world.servers] == [world.new.digest] * 4
    assert world.waves_in_journal() == [("forward", "canary"), ("forward", "eu-west"), ("forward", "us-east")]
    assert steps_of(deployment) == [(wave, kind, "succeeded") for wave in ("canary", "eu-west", "us-east")
                                    for kind in ("pre_check", "rollout", "smoke")]
    smoke = RolloutStep.objects.get(deployment=deployment, kind="smoke", wave_name="eu-west")
    assert smoke.output.count(": ok (200") == 2 and smoke.attempt == 1 and smoke.duration is not None
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.COMPLETED
    # The chain of steps, each task queued by the one before, acts for the release manager who started it.
    audit_seal()
    [completed] = [event for event in AuditEvent.objects.filter(object_type="governance.changerequest",
                                                                object_id=str(world.change.pk))
                   if event.changes.get("status", {}).get("after") == "completed"]
    assert completed.actor_name == "task:governance.tasks.deployment_advance for release_manager"


def test_a_failing_smoke_test_in_wave_two_rolls_back_waves_two_and_one_in_that_order(
        migration_data, celery_worker_process, deploy_world, release_manager):
    world = deploy_world
    world.waves["eu-west"][1].broken.add(world.new.digest)  # the new build fails its health check there
    deployment = rollout_start(actor=release_manager, change=world.change, plan=world.plan, artifact=world.new)

    assert wait_for("the rollback to end", lambda: ended(deployment)).status == DeploymentStatus.ROLLED_BACK
    assert world.waves_in_journal() == [("forward", "canary"), ("forward", "eu-west"),
                                        ("backward", "eu-west"), ("backward", "canary")]
    assert [server.serves() for server in world.servers] == [world.old.digest] * 4
    assert steps_of(deployment) == [
        ("canary", "pre_check", "succeeded"), ("canary", "rollout", "succeeded"), ("canary", "smoke", "succeeded"),
        ("eu-west", "pre_check", "succeeded"), ("eu-west", "rollout", "succeeded"), ("eu-west", "smoke", "failed"),
        ("us-east", "pre_check", "skipped"), ("us-east", "rollout", "skipped"), ("us-east", "smoke", "skipped"),
        ("eu-west", "rollback_rollout", "succeeded"), ("canary", "rollback_rollout", "succeeded"),
    ]
    failed = RolloutStep.objects.get(deployment=deployment, kind="smoke", wave_name="eu-west")
    assert "status 500, expected 200" in failed.output
    assert deployment.halt_reason == "Step 6 (smoke tests, wave eu-west) failed."
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.ROLLED_BACK


def test_a_lockdown_declared_during_wave_one_stops_wave_two(
        migration_data, celery_worker_process, deploy_world, release_manager):
    world = deploy_world
    PlanWave.objects.filter(plan=world.plan, name="canary").update(bake_seconds=3)
    deployment = rollout_start(actor=release_manager, change=world.change, plan=world.plan, artifact=world.new)
    wait_for("wave one to bake", lambda: RolloutStep.objects.filter(
        deployment=deployment, wave_name="canary", kind="watch", state="running").exists())
    lockdown_declare(actor=release_manager, reason="INC-77 checkout outage", scope={"everything": True})

    wait_for("the deployment to pause", lambda: Deployment.objects.filter(pk=deployment.pk, status="paused").exists())
    deployment.refresh_from_db()
    assert "A lockdown stops the line: INC-77 checkout outage." in deployment.halt_reason
    assert deployment.halt_reason.startswith("Wave 2 (eu-west) did not start:")
    time.sleep(1)  # nothing moves while it is paused
    assert [server.serves() for server in world.servers] == [world.new.digest] + [world.old.digest] * 3
    assert world.waves_in_journal() == [("forward", "canary")]
    assert [state for wave, _, state in steps_of(deployment) if wave != "canary"] == ["pending"] * 6

    # Stopped for good: the release manager aborts, and the wave done is rolled back.
    deployment_abort(actor=release_manager, deployment=deployment, reason="INC-7: stop the rollout")
    assert wait_for("the abort to end", lambda: ended(deployment)).status == DeploymentStatus.ABORTED
    assert world.waves_in_journal() == [("forward", "canary"), ("backward", "canary")]
    assert [server.serves() for server in world.servers] == [world.old.digest] * 4
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.ROLLED_BACK


def starts_at_once(plan: DeploymentPlan, start_one: Callable[[], Deployment]) -> list[Deployment]:
    """Two starts, each in a thread on a database connection of its own, inside the service at the same moment: the
    plan's row, where starts for a plan take turns, is held here until both wait for it, then let go."""
    started: list[Deployment] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            started.append(start_one())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    def waiting() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # the view is otherwise read once per transaction
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND cardinality(pg_blocking_pids(pid)) > 0")
            return cursor.fetchone()[0]

    threads = [threading.Thread(target=run) for _ in range(2)]
    with transaction.atomic():
        DeploymentPlan.objects.select_for_update().get(pk=plan.pk)
        for thread in threads:
            thread.start()
        wait_for("both starts to wait for the plan", lambda: errors or waiting() == 2, timeout=30)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return started


def test_two_starts_at_once_run_one_after_the_other(migration_data, celery_worker_process, deploy_world,
                                                    release_manager):
    world = deploy_world
    started = starts_at_once(world.plan, lambda: rollout_start(actor=release_manager, change=world.change,
                                                               plan=world.plan, artifact=world.new))
    assert sorted(d.status for d in started) == [DeploymentStatus.QUEUED, DeploymentStatus.STARTED]
    first, second = sorted(started, key=lambda d: d.status != DeploymentStatus.STARTED)

    assert wait_for("the first to end", lambda: ended(first)).status == DeploymentStatus.SUCCEEDED
    assert wait_for("the second to end", lambda: ended(second)).status == DeploymentStatus.SUCCEEDED
    first.refresh_from_db()
    assert second.started_at >= first.finished_at
    assert second.previous_artifact == world.new  # what the first left running
    assert world.waves_in_journal() == [("forward", wave) for wave in ("canary", "eu-west", "us-east")] * 2
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.COMPLETED

