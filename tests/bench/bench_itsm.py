"""Outbound ITSM sync benchmark: updates queued in the outbox, delivered by real Celery workers to the ServiceNow
stand-in (governance/itsm/demo_servicenow.py, a local HTTP server in this process).

A plain script, not a test (pytest does not collect tests/bench). From the project root, with Redis on REDIS_URL
(default redis://127.0.0.1:6379/0):

    .venv/bin/python tests/bench/bench_itsm.py [--updates 10000] [--changes 1000] [--workers 2] [--baseline]

It creates its own scratch database `changeboard_bench_itsm` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens. Its workers take a
queue of the run's own. Updates are queued as the change services queue them: in a transaction holding the change's
row lock, by `outbox_enqueue` (the change as the connector maps it, its idempotency key), its task sent on commit.

1. Throughput: --updates updates of --changes changes queued with no worker running (their tasks wait in Redis),
   then delivered by --workers workers (prefork, one process each). Printed: updates/s from the first update the
   stand-in applied to the last.                                   target: >= 200 updates/s
2. Latency: with the workers running, updates queued at a steady rate (half the measured throughput) for a tenth of
   --updates; each one's time from its commit to the stand-in applying it. Printed: median and p99.
Both rounds check the order per change in the stand-in: the idempotency keys it applied to each change's record,
in order, are the change's updates in sequence, each once.
0. With --baseline, first: the ceiling the remote itself allows on this machine, printed beside the rounds. A stand-in
   of its own is driven by --workers processes, each with one HTTP client (connections kept), making the connector's
   calls for its share of the changes as fast as it can, with no database and no Celery: as the relay calls now (the
   record read once per change's batch, then one write per update), and with a GET before each write (as it did
   before). Printed: updates/s from the first update the stand-in applied to the last.
"""

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.bench_deployments import Workers  # noqa: E402
from tests.bench.scratch import admin, scratch_url, setup_django  # noqa: E402

BENCH_DB = "changeboard_bench_itsm"
QUEUERS = 4
USERNAME_ENV, PASSWORD_ENV = "BENCH_SERVICENOW_USER", "BENCH_SERVICENOW_PASSWORD"


def timed_servicenow():
    """The stand-in, noting when it applied each update (by the idempotency key the write carried). Made once
    Django is set up: the stand-ins import the models."""
    from governance.itsm.demo_servicenow import ServiceNowStandIn

    class TimedServiceNow(ServiceNowStandIn):
        def __init__(self, **credentials):
            super().__init__(**credentials)
            self.applied_at: dict[str, float] = {}

        def _written(self, operation, table, record, fields):
            super()._written(operation, table, record, fields)
            if fields.get("correlation_display"):
                self.applied_at.setdefault(fields["correlation_display"], time.time())

    return TimedServiceNow().start()


def configure(standin, directory: Path) -> None:
    """The connector file and credentials, in this process's environment (the workers inherit it) and settings."""
    import os

    from django.conf import settings

    from governance.itsm.config import connectors_load

    path = directory / "itsm-bench.json"
    path.write_text(json.dumps([{"name": "servicenow", "kind": "servicenow", "url": standin.url, "teams": ["*"],
                                 "credentials": {"username_env": USERNAME_ENV, "password_env": PASSWORD_ENV}}]))
    os.environ.update({"ITSM_CONFIG_FILE": str(path), USERNAME_ENV: standin.username,
                       PASSWORD_ENV: standin.password})
    settings.ITSM_CONNECTORS = connectors_load(str(path))


def make_changes(count: int) -> list:
    from django.utils import timezone

    from governance.models import ChangeRequest
    from tests.factories import make_ci, make_environment, make_team, make_user

    requester = make_user("rita", "requester")
    ci = make_ci("payments-api", team=make_team("payments"))
    environment = make_environment("production", 3)
    start = timezone.now() + timedelta(days=2)
    changes = []
    for n in range(count):
        change = ChangeRequest.objects.create(
            requester=requester, title=f"Upgrade payments-api, part {n}", environment=environment,
            planned_start=start, planned_end=start + timedelta(hours=2), implementation_plan="helm upgrade",
            backout_plan="helm rollback")
        change.affected_cis.set([ci])
        changes.append(change)
    return changes


def enqueue(change, revision: int) -> tuple[str, float]:
    """One update of `change`, queued as the change services queue it; its key and the moment it committed."""
    from django.db import transaction

    from governance.itsm.outbox import outbox_enqueue
    from governance.models import ChangeRequest

    with transaction.atomic():
        locked = ChangeRequest.objects.select_for_update().get(pk=change.pk)
        locked.title = f"{change.title.split(' (rev')[0]} (rev {revision})"
        locked.save(update_fields=["title"])
        key = outbox_enqueue(locked, "updated")[0].idempotency_key
    return key, time.time()


def queue_updates(changes: list, updates: int) -> list[str]:
    """`updates` updates, round-robin over the changes, queued by QUEUERS threads (each its own connection), each
    thread queueing its own changes' updates in order."""
    from django.db import connection

    def queue(part: int) -> list[str]:
        try:
            mine = changes[part::QUEUERS]
            return [enqueue(mine[n % len(mine)], n // len(mine))[0] for n in range(len(mine) * updates // len(changes))]
        finally:
            connection.close()

    with ThreadPoolExecutor(QUEUERS) as pool:
        return [key for keys in pool.map(queue, range(QUEUERS)) for key in keys]


def drained() -> None:
    """Wait until the workers have taken every task of the first round (the no-op ones too: a change's later
    updates' tasks find them delivered by the first)."""
    import redis
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    while broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE):
        time.sleep(0.2)
    time.sleep(1)


def wait_delivered(standin, keys: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(key in standin.applied_at for key in keys):
        if time.monotonic() > deadline:
            missing = sum(key not in standin.applied_at for key in keys)
            raise SystemExit(f"{missing} updates were not delivered within {timeout:.0f} s")
        time.sleep(0.2)


def order_kept(standin, changes: list) -> bool:
    from governance.models import OutboxMessage

    for change in changes:
        expected = list(OutboxMessage.objects.filter(change=change).order_by("sequence")
                        .values_list("idempotency_key", flat=True))
        if standin.applied_keys(change.number) != expected:
            return False
    return True


def drive_remote(url: str, username: str, password: str, numbers: list[str], per_change: int, payload: dict,
                 get_each: bool) -> None:
    """One client of the baseline: for each change, the lookup by correlation_id, then each update's write (the
    first creates the record), with a GET of the record before each when `get_each`."""
    import httpx

    from governance.itsm.servicenow import CHANGES, SEEN_FIELDS

    fields = {"sysparm_fields": SEEN_FIELDS}
    with httpx.Client(base_url=url, auth=(username, password), headers={"Accept": "application/json"},
                      trust_env=False) as client:
        for number in numbers:
            found = client.get(CHANGES, params={"sysparm_query": f"correlation_id={number}", "sysparm_limit": "1",
                                                **fields}).raise_for_status().json()["result"]
            sys_id = found[0]["sys_id"] if found else None
            for sequence in range(1, per_change + 1):
                body = {**payload, "correlation_id": number, "correlation_display": f"servicenow:{number}:{sequence}"}
                if sys_id is None:
                    created = client.post(CHANGES, json=body, params=fields).raise_for_status()
                    sys_id = created.json()["result"]["sys_id"]
                    continue
                if get_each:
                    client.get(f"{CHANGES}/{sys_id}", params=fields).raise_for_status()
                client.patch(f"{CHANGES}/{sys_id}", json=body, params=fields).raise_for_status()


def remote_alone(changes: list, updates: int, clients: int, *, get_each: bool) -> float:
    """Updates/s the stand-in applies when `clients` processes drive it as fast as they can (no database, no
    Celery): a stand-in of its own, forked clients (the database connection closed first, which they do not use)."""
    from django.db import connections

    from governance.itsm.servicenow import servicenow_payload

    payload = servicenow_payload(changes[0])
    numbers = [f"CHG9{n:06d}" for n in range(len(changes))]
    per_change = updates // len(changes)
    standin = timed_servicenow()
    try:
        connections.close_all()
        context = multiprocessing.get_context("fork")
        processes = [context.Process(target=drive_remote, args=(
            standin.url, standin.username, standin.password, numbers[part::clients], per_change, payload, get_each))
            for part in range(clients)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        assert all(process.exitcode == 0 for process in processes), "a client of the baseline failed"
        applied = list(standin.applied_at.values())
        assert len(applied) == per_change * len(numbers), "the baseline's updates were not all applied"
        return len(applied) / (max(applied) - min(applied))
    finally:
        standin.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", action="store_true",
                        help="first measure the remote alone, driven by as many clients as workers")
    options = parser.parse_args()
    admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    admin(scratch_url(BENCH_DB), f"CREATE DATABASE {BENCH_DB}")
    standin = None
    try:
        setup_django(scratch_url(BENCH_DB))
        import tempfile

        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        standin = timed_servicenow()
        configure(standin, Path(tempfile.mkdtemp(prefix="bench-itsm-")))
        changes = make_changes(options.changes)
        if options.baseline:
            batched = remote_alone(changes, options.updates, options.workers, get_each=False)
            each = remote_alone(changes, options.updates, options.workers, get_each=True)
            print(f"0. the remote alone, {options.workers} client(s), no database, no Celery: {batched:.0f} updates/s "
                  f"reading the record once per change; {each:.0f} updates/s with a GET before each update")

        started = time.perf_counter()
        keys = queue_updates(changes, options.updates)
        queued = time.perf_counter() - started
        print(f"Queued {len(keys)} updates of {len(changes)} changes in {queued:.1f} s by {QUEUERS} threads "
              f"({len(keys) / queued:.0f}/s, one transaction each, the change's row locked).")
        workers = Workers(options.workers)
        try:
            wait_delivered(standin, keys, timeout=30 * 60)
            applied = [standin.applied_at[key] for key in keys]
            seconds = max(applied) - min(applied)
            rate = len(keys) / seconds
            kept = order_kept(standin, changes)
            print(f"1. throughput, {options.workers} worker(s): {len(keys)} updates in {seconds:.1f} s = {rate:.0f} "
                  f"updates/s; order per change kept in the stand-in: {'yes' if kept else 'NO'}; "
                  f"target >= 200/s: {'PASS' if rate >= 200 and kept else 'FAIL'}")

            drained()
            count, pace = max(options.updates // 10, 1), 1 / max(rate / 2, 1)
            committed: dict[str, float] = {}
            start = time.perf_counter()
            for n in range(count):
                key, at = enqueue(changes[n % len(changes)], 1000 + n // len(changes))
                committed[key] = at
                time.sleep(max(0.0, start + (n + 1) * pace - time.perf_counter()))
            wait_delivered(standin, list(committed), timeout=10 * 60)
            latencies = [(standin.applied_at[key] - at) * 1000 for key, at in committed.items()]
            print(f"2. latency at {1 / pace:.0f} updates/s offered: commit to remote median "
                  f"{statistics.median(latencies):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms over {count} updates; "
                  f"order per change kept: {'yes' if order_kept(standin, changes) else 'NO'}")
        finally:
            workers.stop()
    finally:
        if standin is not None:
            standin.stop()
        from django.db import connections

        connections.close_all()
        admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
