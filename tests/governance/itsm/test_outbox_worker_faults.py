"""Outbound sync survives a worker killed while it delivers: in each of ten trials a real Celery worker (prefork, as
in production) is SIGKILLed at a random moment while it sends two changes' updates to a ServiceNow stand-in that
answers slowly, a new worker is started, and every update reaches the remote once, in order, by the remote's own
count (the idempotency keys of the writes it applied). A kill often lands after the remote applied an update and
before the worker recorded it: the next worker sends it again and the connector finds it applied.

The workers get a short lease (the killed one's updates are taken over two seconds later) and the test calls the
beat job's sweep itself, as beat would if its period were short. Random moments come from a seed, printed and named
in every failure: FAULT_SEED=<seed> replays a run."""

import os
import random
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection

from governance.itsm.demo_servicenow import ServiceNowStandIn
from governance.itsm.relay import outbox_sweep
from governance.models import OutboxMessage
from tests.conftest import database_url_of
from tests.governance.deployments.test_worker_faults import Worker, forget_unacked
from tests.governance.itsm.conftest import SERVICENOW_PASSWORD_ENV, SERVICENOW_USERNAME_ENV, servicenow_entry
from tests.governance.itsm.outbox_world import all_delivered, keys_of, outbound_world, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

TRIALS = 10
SWEEP_SECONDS = 0.25
TRIAL_TIMEOUT_SECONDS = 40


class SlowServiceNow(ServiceNowStandIn):
    """Answers a write a little after applying it, so a worker is often killed between the two."""

    def __init__(self, rng: random.Random, **credentials):
        super().__init__(**credentials)
        self.rng = rng

    def route(self, method, path, query, body, headers, raw):
        answer = super().route(method, path, query, body, headers, raw)
        time.sleep(self.rng.uniform(0.02, 0.15))
        return answer


def test_no_update_is_lost_or_applied_twice_when_workers_are_killed_while_delivering(
        migration_data, itsm_configure, settings, monkeypatch, requester, capsys):
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(10**9))
    with capsys.disabled():
        print(f"\noutbox worker faults: FAULT_SEED={seed}")
    rng = random.Random(seed)
    standin = SlowServiceNow(random.Random(seed + 1)).start()
    itsm_configure(servicenow_entry(standin), env={SERVICENOW_USERNAME_ENV: standin.username,
                                                   SERVICENOW_PASSWORD_ENV: standin.password})
    worker_env(monkeypatch, settings)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": database_url_of(connection.settings_dict), "REDIS_URL": django_settings.REDIS_URL}
    world = outbound_world(requester)
    worker = Worker(env)
    mid_delivery = 0
    try:
        for trial in range(TRIALS):
            note = f"FAULT_SEED={seed} trial {trial}"
            worker.wait_ready()
            changes = [world.move_through(world.raise_change(f"Trial {trial}, change {n}")) for n in range(2)]
            time.sleep(rng.uniform(0.1, 1.2))
            mid_delivery += OutboxMessage.objects.filter(change__in=changes, state="delivering").exists()
            worker.kill(with_commands=False)
            worker = Worker(env)
            deadline = time.monotonic() + TRIAL_TIMEOUT_SECONDS
            while not all_delivered(changes):
                assert time.monotonic() < deadline, f"{note}: the updates were not all delivered"
                outbox_sweep()
                time.sleep(SWEEP_SECONDS)
            for change in changes:
                assert len(standin.changes_for(change.number)) == 1, f"{note}: {change.number} created twice"
                assert standin.applied_keys(change.number) == keys_of(change, "servicenow"), (
                    f"{note}: {change.number}'s updates were not applied once each, in order")
    finally:
        worker.stop()
        standin.stop()
        forget_unacked({"servicenow"})
    assert mid_delivery >= TRIALS // 2, f"FAULT_SEED={seed}: most kills came when nothing was being delivered"
    with capsys.disabled():
        print(f"outbox worker faults: {TRIALS} trials, {mid_delivery} killed while delivering")
