"""The change's rollback triggers and the dependency circuit breaker with a real Celery worker on Redis: the worker
asks a real Prometheus, which scrapes the service's request counters every second, and the dependencies over HTTP."""

import re
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cmdb.models import Relationship
from governance.deployments.services import rollout_start
from governance.models import ChangeRequest, ChangeStatus
from releases.models import Deployment, DeploymentStatus, HealthCheck, PlanWave, RolloutStep
from tests.factories import make_ci
from tests.governance.deployments.world import ended, start, steps_of, wait_for
from tests.releases.real_prometheus import ERROR_RATE_QUERY

pytestmark = pytest.mark.django_db(transaction=True)


def watched_for_errors(world, prometheus) -> None:
    """The change rolls back above 2 % errors; the plan's watch asks Prometheus the service's error rate, and eu-west
    bakes 6 s (the worker's watch asks every 5 s: as it starts, after 5 s and at the end)."""
    ChangeRequest.objects.filter(pk=world.change.pk).update(rollback_error_rate_pct=Decimal("2.00"))
    world.change.refresh_from_db()
    HealthCheck.objects.create(plan=world.plan, name="error-rate", phase="watch", kind="metric", url=prometheus.url,
                               query=ERROR_RATE_QUERY, measures="error_rate_pct")
    PlanWave.objects.filter(plan=world.plan, name="eu-west").update(bake_seconds=6)


def watch(deployment: Deployment, wave: str) -> RolloutStep:
    return RolloutStep.objects.get(deployment=deployment, kind="watch", wave_name=wave)


# The test without a spike comes first: the spike leaves Prometheus' window full of errors for a few seconds, which the
# `prometheus` fixture would wait out.
def test_an_error_rate_that_stays_low_lets_every_wave_bake(migration_data, celery_worker_process, deploy_world,
                                                          release_manager, prometheus):
    world = deploy_world
    watched_for_errors(world, prometheus)
    deployment = start(world, release_manager)

    assert wait_for("the deployment to end", lambda: ended(deployment)).status == DeploymentStatus.SUCCEEDED
    assert [server.serves() for server in world.servers] == [world.new.digest] * 4
    baked = watch(deployment, "eu-west").output
    assert baked.startswith("Baked 6 s, healthy.\n"), baked
    assert set(baked.splitlines()[1:]) == {"error-rate: ok (0.5)"}  # each round, the exporter's 0.5 %
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.COMPLETED


def test_an_error_rate_spike_during_wave_two_bake_rolls_the_deployment_back(
        migration_data, celery_worker_process, deploy_world, release_manager, prometheus):
    world = deploy_world
    watched_for_errors(world, prometheus)
    deployment = start(world, release_manager)

    wait_for("eu-west to bake", lambda: watch(deployment, "eu-west").state == "running")
    prometheus.exporter.errors(25.0)  # a quarter of the requests fail from now on

    assert wait_for("the rollback to end", lambda: ended(deployment)).status == DeploymentStatus.ROLLED_BACK
    assert world.waves_in_journal() == [("forward", "canary"), ("forward", "eu-west"),
                                        ("backward", "eu-west"), ("backward", "canary")]
    assert [server.serves() for server in world.servers] == [world.old.digest] * 4
    assert watch(deployment, "canary").output.startswith("Baked 0 s, healthy.\nerror-rate: ok (0.5)")
    tripped = watch(deployment, "eu-west")
    assert tripped.state == "failed"
    first = re.fullmatch(r"Rollback trigger tripped: error rate ([\d.]+) % \(error-rate\) is above the change's "
                         r"2\.00 %\.", tripped.output.splitlines()[0])
    assert first and 2.0 < float(first[1]) <= 25.0, tripped.output
    assert deployment.halt_reason.endswith(tripped.output.splitlines()[0])
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.ROLLED_BACK


def test_an_unhealthy_dependency_pauses_the_rollout_before_its_wave(migration_data, celery_worker_process,
                                                                    deploy_world, release_manager):
    world = deploy_world

    class Down(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/healthz"
        database = make_ci("payments-db", ci_type="database", health_url=url)
        Relationship.objects.create(source=world.plan.service, target=database, rel_type="depends_on")
        deployment = rollout_start(actor=release_manager, change=world.change, plan=world.plan, artifact=world.new)
        wait_for("the deployment to pause",
                 lambda: Deployment.objects.filter(pk=deployment.pk, status="paused").exists())
        deployment.refresh_from_db()
        assert deployment.halt_reason == (f"Wave 1 (canary) did not start: a dependency of shop-api is unhealthy: "
                                          f"payments-db ({url}) answered 503.")
        assert world.waves_in_journal() == []
        assert steps_of(deployment)[0] == ("canary", "pre_check", "pending")
    finally:
        httpd.shutdown()
        httpd.server_close()
