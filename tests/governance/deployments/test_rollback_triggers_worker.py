"""The change's rollback triggers and the dependency circuit breaker with a real Celery worker on Redis: the worker
asks a Prometheus stand-in and the dependencies over HTTP, as it would the real ones."""

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cmdb.models import Relationship
from governance.deployments.services import rollout_start
from governance.models import ChangeRequest, ChangeStatus
from releases.models import Deployment, DeploymentStatus, HealthCheck, PlanWave, RolloutStep
from tests.factories import make_ci
from tests.governance.deployments.world import ended, steps_of, wait_for
from tests.releases.prometheus_server import error_rate, serving

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prometheus():
    yield from serving()


def test_an_error_rate_spike_during_wave_two_bake_rolls_the_deployment_back(
        migration_data, celery_worker_process, deploy_world, release_manager, prometheus):
    world = deploy_world
    ChangeRequest.objects.filter(pk=world.change.pk).update(rollback_error_rate_pct=Decimal("2.00"))
    world.change.refresh_from_db()
    HealthCheck.objects.create(plan=world.plan, name="error-rate", phase="watch", kind="metric", url=prometheus.url,
                               query='100 * sum(rate(http_requests_total{code=~"5.."}[1m])) '
                                     '/ sum(rate(http_requests_total[1m]))', measures="error_rate_pct")
    PlanWave.objects.filter(plan=world.plan, name="eu-west").update(bake_seconds=8)
    # Healthy until eu-west has baked a round on the new build; then its errors spike.
    rounds_on_new: list[float] = []

    def answer():
        if world.waves["eu-west"][0].serves() != world.new.digest:
            return error_rate(0.3)
        rounds_on_new.append(1)
        return error_rate(0.3 if len(rounds_on_new) == 1 else 12.5)

    prometheus.answer = answer
    deployment = rollout_start(actor=release_manager, change=world.change, plan=world.plan, artifact=world.new)

    assert wait_for("the rollback to end", lambda: ended(deployment)).status == DeploymentStatus.ROLLED_BACK
    assert world.waves_in_journal() == [("forward", "canary"), ("forward", "eu-west"),
                                        ("backward", "eu-west"), ("backward", "canary")]
    assert [server.serves() for server in world.servers] == [world.old.digest] * 4
    watch = RolloutStep.objects.get(deployment=deployment, kind="watch", wave_name="eu-west")
    assert watch.state == "failed" and len(rounds_on_new) == 2
    assert watch.output.splitlines()[0] == (
        "Rollback trigger tripped: error rate 12.5 % (error-rate) is above the change's 2.00 %.")
    assert "error-rate: ok (0.3" in watch.output  # the round before the spike
    assert deployment.halt_reason.endswith("error rate 12.5 % (error-rate) is above the change's 2.00 %.")
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
