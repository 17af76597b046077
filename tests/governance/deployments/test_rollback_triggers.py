"""The change's rollback triggers, evaluated by the engine while a wave bakes (an error rate from a metric check,
the p99 latency of the HTTP probes, a count of failed checks), and the dependency circuit breaker before each wave,
driven in this process against local servers: the targets, a Prometheus stand-in and the dependencies."""

import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cmdb.models import Relationship
from governance.deployments.services import deployment_resume
from governance.models import ChangeRequest, ChangeStatus
from releases.models import Deployment, DeploymentStatus, HealthCheck, PlanWave, RolloutStep
from tests.factories import make_ci
from tests.governance.deployments.world import drive, start, steps_of
from tests.releases.prometheus_server import error_rate, serving, vector

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]

ERRORS = '100 * sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'


@pytest.fixture(autouse=True)
def quick_watch(monkeypatch):
    """A watch round every 50 ms, so a few seconds of bake make many rounds."""
    monkeypatch.setattr("releases.engine.WATCH_INTERVAL_SECONDS", 0.05)


@pytest.fixture
def prometheus():
    yield from serving()


class Endpoint:
    """A local HTTP endpoint answering `status` after `delay` seconds; counts what it was asked."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.status, self.delay, self.asked = status, delay, 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                endpoint.asked += 1
                time.sleep(endpoint.delay)
                status = endpoint.status(endpoint.asked) if callable(endpoint.status) else endpoint.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/healthz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoints():
    made: list[Endpoint] = []

    def make(**kwargs) -> Endpoint:
        made.append(Endpoint(**kwargs))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def triggers(world, **thresholds) -> None:
    ChangeRequest.objects.filter(pk=world.change.pk).update(**thresholds)
    world.change.refresh_from_db()


def watch(deployment: Deployment, wave: str) -> RolloutStep:
    return RolloutStep.objects.get(deployment=deployment, kind="watch", wave_name=wave)


def test_the_changes_triggers_are_copied_onto_its_deployment(deploy_world, release_manager):
    triggers(deploy_world, rollback_error_rate_pct=Decimal("2.5"), rollback_latency_p99_ms=800,
             rollback_failed_health_checks=3)
    deployment = start(deploy_world, release_manager)
    assert (deployment.rollback_error_rate_pct, deployment.rollback_latency_p99_ms,
            deployment.rollback_failed_health_checks) == (Decimal("2.50"), 800, 3)


def test_an_error_rate_above_the_changes_threshold_during_the_bake_rolls_the_wave_back(
        deploy_world, release_manager, prometheus):
    world = deploy_world
    triggers(world, rollback_error_rate_pct=Decimal("2.00"))
    HealthCheck.objects.create(plan=world.plan, name="error-rate", phase="watch", kind="metric", url=prometheus.url,
                               query=ERRORS, measures="error_rate_pct")
    PlanWave.objects.filter(plan=world.plan).update(bake_seconds=1)
    # Errors climb once eu-west serves the new build.
    prometheus.answer = lambda: error_rate(7.5 if world.waves["eu-west"][0].serves() == world.new.digest else 0.4)

    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK
    assert world.waves_in_journal() == [("forward", "canary"), ("forward", "eu-west"),
                                        ("backward", "eu-west"), ("backward", "canary")]
    assert watch(deployment, "canary").state == "succeeded"
    tripped = watch(deployment, "eu-west")
    assert tripped.state == "failed"
    assert tripped.output.splitlines()[0] == (
        "Rollback trigger tripped: error rate 7.5 % (error-rate) is above the change's 2.00 %.")
    assert deployment.halt_reason == ("Step 8 (health watch while baking, wave eu-west) failed. Rollback trigger "
                                      "tripped: error rate 7.5 % (error-rate) is above the change's 2.00 %.")
    assert set(prometheus.queries) == {ERRORS}
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.ROLLED_BACK


def test_an_error_rate_under_the_threshold_lets_every_wave_bake(deploy_world, release_manager, prometheus):
    world = deploy_world
    triggers(world, rollback_error_rate_pct=Decimal("2.00"))
    HealthCheck.objects.create(plan=world.plan, name="error-rate", phase="watch", kind="metric", url=prometheus.url,
                               query=ERRORS, measures="error_rate_pct")
    prometheus.answer = error_rate(1.5)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.SUCCEEDED
    assert "error-rate: ok (1.5" in watch(deployment, "us-east").output


def test_a_p99_latency_above_the_changes_threshold_rolls_back(deploy_world, release_manager, endpoints):
    world = deploy_world
    triggers(world, rollback_latency_p99_ms=100)
    slow = endpoints(delay=0.3)
    # The check itself sets no ceiling: the change's trigger is what trips.
    HealthCheck.objects.create(plan=world.plan, name="checkout", phase="watch", url=slow.url)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK
    first = watch(deployment, "canary").output.splitlines()[0]
    assert first.startswith("Rollback trigger tripped: p99 latency ") and first.endswith(
        " ms over 1 probes is above the change's 100 ms.")
    assert int(first.split("p99 latency ")[1].split(" ms")[0]) >= 300
    assert world.waves_in_journal() == [("forward", "canary"), ("backward", "canary")]


def test_failed_checks_are_counted_until_they_reach_the_changes_trigger(deploy_world, release_manager, endpoints):
    world = deploy_world
    triggers(world, rollback_failed_health_checks=3)
    PlanWave.objects.filter(plan=world.plan, name="canary").update(bake_seconds=5)
    failing = endpoints(status=503)
    HealthCheck.objects.create(plan=world.plan, name="checkout", phase="watch", url=failing.url)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK
    output = watch(deployment, "canary").output
    assert output.splitlines()[0] == "Rollback trigger tripped: 3 failed health checks reach the change's 3."
    assert output.count("status 503, expected 200") == 3 and failing.asked == 3


def test_failed_checks_below_the_changes_trigger_are_tolerated(deploy_world, release_manager, endpoints):
    world = deploy_world
    triggers(world, rollback_failed_health_checks=3)
    PlanWave.objects.filter(plan=world.plan).update(bake_seconds=1)
    flaky = endpoints(status=lambda asked: 503 if asked == 1 else 200)  # one blip in canary's first round
    HealthCheck.objects.create(plan=world.plan, name="checkout", phase="watch", url=flaky.url)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.SUCCEEDED
    assert watch(deployment, "canary").output.startswith("Baked 1 s, healthy. 1 failed checks tolerated.")


def test_without_a_failed_checks_trigger_the_first_failed_check_ends_the_watch(deploy_world, release_manager,
                                                                                endpoints):
    world = deploy_world
    failing = endpoints(status=503)
    HealthCheck.objects.create(plan=world.plan, name="checkout", phase="watch", url=failing.url)
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK and failing.asked == 1
    assert deployment.halt_reason == "Step 4 (health watch while baking, wave canary) failed."


def test_an_unhealthy_dependency_pauses_before_the_wave_and_a_healthy_one_lets_it_go(deploy_world, release_manager,
                                                                                     endpoints):
    world = deploy_world
    database = endpoints(status=503)
    payments_db = make_ci("payments-db", ci_type="database", health_url=database.url)
    proxy = make_ci("db-proxy", ci_type="service")  # no health URL: not asked
    service = world.plan.service
    Relationship.objects.create(source=service, target=proxy, rel_type="depends_on")
    Relationship.objects.create(source=proxy, target=payments_db, rel_type="depends_on")
    unrelated = endpoints(status=500)
    make_ci("billing", health_url=unrelated.url)  # not a dependency of the service: not asked either

    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.PAUSED
    assert deployment.halt_reason == (f"Wave 1 (canary) did not start: a dependency of shop-api is unhealthy: "
                                      f"payments-db ({database.url}) answered 503.")
    assert world.waves_in_journal() == [] and unrelated.asked == 0
    assert steps_of(deployment)[0] == ("canary", "pre_check", "pending")

    database.status = 200
    deployment = drive(deployment_resume(actor=release_manager, deployment=deployment))
    assert deployment.status == DeploymentStatus.SUCCEEDED
    pre_check = RolloutStep.objects.get(deployment=deployment, kind="pre_check", wave_name="us-east")
    assert "Dependencies healthy: payments-db (200).\n" in pre_check.output


def test_a_dependency_that_fails_midway_pauses_before_the_next_wave(deploy_world, release_manager, endpoints):
    world = deploy_world
    # The database falls over once the canary runs the new build.
    database = endpoints(status=lambda asked: 200 if world.waves["canary"][0].serves() == world.old.digest else 502)
    dependency = make_ci("payments-db", ci_type="database", health_url=database.url)
    Relationship.objects.create(source=world.plan.service, target=dependency, rel_type="depends_on")
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.PAUSED
    assert world.waves_in_journal() == [("forward", "canary")]
    assert deployment.halt_reason.startswith("Wave 2 (eu-west) did not start: a dependency of shop-api is unhealthy: "
                                             "payments-db")


def test_a_metric_check_that_matches_no_series_fails_the_watch_with_its_reason(deploy_world, release_manager,
                                                                              prometheus):
    world = deploy_world
    triggers(world, rollback_error_rate_pct=Decimal("2.00"))
    HealthCheck.objects.create(plan=world.plan, name="error-rate", phase="watch", kind="metric", url=prometheus.url,
                               query=ERRORS, measures="error_rate_pct")
    prometheus.answer = vector()  # e.g. the job's series renamed: blind, not healthy
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK
    assert watch(deployment, "canary").output == "error-rate: the query matched no series (empty result)"


def test_a_metric_smoke_check_past_its_own_threshold_fails_the_wave(deploy_world, release_manager, prometheus):
    world = deploy_world
    HealthCheck.objects.create(plan=world.plan, name="saturation", phase="smoke", kind="metric", url=prometheus.url,
                               query="max(queue_depth)", threshold=100, fails_when="above")
    prometheus.answer = vector(({"queue": "orders"}, "250"))
    deployment = drive(start(world, release_manager))
    assert deployment.status == DeploymentStatus.ROLLED_BACK
    smoke = RolloutStep.objects.get(deployment=deployment, kind="smoke", wave_name="canary").output
    assert 'saturation: 250 ({queue="orders"}), above its threshold 100' in smoke
    assert smoke.count("saturation") == 1  # asked once per round, not once per target
