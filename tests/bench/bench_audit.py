"""Audit ledger benchmark: capture, seal and verify 1,000,000 events; the ledger's cost to audited writes.

A plain script, not a test (pytest does not collect tests/bench). From the project root:

    .venv/bin/python tests/bench/bench_audit.py [--events 1000000] [--seconds 10]

It creates its own scratch database `changeboard_bench_audit` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens.

1. Capture: CIs are inserted by SQL in batches, so the audit trigger records one event per row.
2. Seal: governance.audit.ledger.audit_seal chains them (SHA-256) into the ledger.
3. Verify: governance.audit.ledger.audit_verify walks the whole chain again.     target > 100,000 events/s
4. Throughput of audited CMDB writes (one UPDATE per transaction through the ORM) from 8 client
   processes, the ledger on (trigger + a sealer running beside them, as beat runs it) versus off
   (trigger disabled), alternating rounds.                                      target: cost < 30%
"""

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.scratch import admin, insert_cis, scratch_url, setup_django  # noqa: E402

BENCH_DB = "changeboard_bench_audit"
CLIENTS = 8
ROUNDS = 3
WRITE_ROWS = 2_000








def rate(count: int, seconds: float) -> str:
    return f"{count:,} events in {seconds:.1f} s = {count / seconds:,.0f} events/s"


def capture(events: int) -> float:
    from django.db import connection

    from cmdb.models import Team

    team = Team.objects.create(name="Bench", slug="bench")
    started = time.perf_counter()
    batch = 100_000
    with connection.cursor() as cursor:
        for first in range(0, events, batch):
            insert_cis(cursor, team.pk, first + 1, min(first + batch, events))
    return time.perf_counter() - started


def client(args) -> int:
    """One client process: update its own CIs, one transaction each, until the deadline."""
    ids, deadline = args
    from django.db import connection

    from cmdb.models import ConfigurationItem

    done = 0
    while time.time() < deadline:
        ConfigurationItem.objects.filter(pk=ids[done % len(ids)]).update(description=f"write {done}")
        done += 1
    connection.close()
    return done


def sealer(stop) -> None:
    """Seal on the schedule beat keeps in production (AUDIT_SEAL_SECONDS)."""
    from django.conf import settings
    from django.db import connection

    from governance.audit.ledger import audit_seal

    interval = settings.CELERY_BEAT_SCHEDULE["audit-seal"]["schedule"]
    while not stop.wait(interval):
        audit_seal(wait=False)
    connection.close()


def write_round(ids: list[int], seconds: float, ledger_on: bool) -> float:
    from django.db import connection, connections

    with connection.cursor() as cursor:
        state = "ENABLE" if ledger_on else "DISABLE"
        cursor.execute(f"ALTER TABLE cmdb_configurationitem {state} TRIGGER changeboard_audit")
    connections.close_all()  # the forked clients open their own
    chunks = [ids[n::CLIENTS] for n in range(CLIENTS)]
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    background = context.Process(target=sealer, args=(stop,)) if ledger_on else None
    if background:
        background.start()
    deadline = time.time() + seconds
    with context.Pool(CLIENTS) as pool:
        writes = sum(pool.map(client, [(chunk, deadline) for chunk in chunks]))
    if background:
        stop.set()
        background.join()
    return writes / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    admin(scratch_url(BENCH_DB), f"CREATE DATABASE {BENCH_DB}")
    try:
        setup_django(scratch_url(BENCH_DB))
        from django.core.management import call_command

        from cmdb.models import ConfigurationItem
        from governance.audit.ledger import audit_seal, audit_verify
        from governance.models import AuditEvent

        call_command("migrate", verbosity=0)
        print(f"1. capture   {rate(options.events, capture(options.events))} (trigger, batches of 100,000 rows)")
        started = time.perf_counter()
        sealed = audit_seal(batch=20_000)
        print(f"2. seal      {rate(sealed, time.perf_counter() - started)}")
        started = time.perf_counter()
        report = audit_verify()
        elapsed = time.perf_counter() - started
        verified = f"{report.events:,} events in {elapsed:.1f} s = {report.events / elapsed:,.0f} events/s"
        print(f"3. verify    {verified}; chain ok: {report.ok}; target > 100,000 events/s: "
              f"{'PASS' if report.ok and report.events / elapsed > 100_000 else 'FAIL'}")
        assert AuditEvent.objects.count() == options.events + 1  # the CIs and the bench team

        ids = list(ConfigurationItem.objects.order_by("pk").values_list("pk", flat=True)[:WRITE_ROWS])
        on, off = [], []
        for _ in range(ROUNDS):
            off.append(write_round(ids, options.seconds, ledger_on=False))
            on.append(write_round(ids, options.seconds, ledger_on=True))
        on_rate, off_rate = statistics.median(on), statistics.median(off)
        cost = 1 - on_rate / off_rate
        print(f"4. writes    {CLIENTS} clients, {ROUNDS} rounds of {options.seconds:.0f} s each way: "
              f"ledger off {off_rate:,.0f} writes/s (rounds {', '.join(f'{r:,.0f}' for r in off)}), "
              f"ledger on {on_rate:,.0f} writes/s (rounds {', '.join(f'{r:,.0f}' for r in on)})")
        print(f"   the ledger costs audited writes {cost:.1%} of their throughput; target < 30%: "
              f"{'PASS' if cost < 0.30 else 'FAIL'}")
        audit_seal()
        final = audit_verify()
        print(f"   after the write rounds: {final.events:,} events, chain ok: {final.ok}")
    finally:
        from django.db import connections

        connections.close_all()
        admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
