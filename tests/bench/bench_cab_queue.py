"""CAB queue benchmark: the first page of the queue (50 rows) for a CAB member, with 5,000 open changes.

A plain script, not a test (pytest does not collect tests/bench). From the project root:

    .venv/bin/python tests/bench/bench_cab_queue.py [--changes 5000] [--requests 20] [--keep]

It creates its own scratch database `changeboard_bench_queue` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens (--keep leaves it,
to EXPLAIN ANALYZE by hand). The estate: 2,000 CIs in 20 teams with dependencies; 5,000 open changes spread
over every active state and 60 days of windows, each touching 1 to 3 CIs with a blast radius of up to 25, in
CAB review most of them, needing a CAB member (and an SRE for some), a few already approved by someone; the
CAB member also holds the SRE role for two teams (a django-guardian grant), so the "awaiting me" test
takes both paths. Each page is requested through Django's test Client, the whole server-side stack (session,
auth, middleware, the view, template rendering) in this process; the numbers are the time of
`client.get` and the SQL queries it made.                                    target: median < 150 ms
"""

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.scratch import admin, scratch_url, setup_django  # noqa: E402

BENCH_DB = "changeboard_bench_queue"
TARGET_MS = 150.0
CIS = 2_000
TEAMS = 20
SEED = 20_261_127








def build(changes: int, rng: random.Random):
    """The estate, the people and `changes` open changes; returns the CAB member who reads the queue."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.utils import timezone
    from guardian.shortcuts import assign_perm

    from cmdb.models import ConfigurationItem, Environment, Relationship, Team
    from governance.models import Approval, ApprovalRequirement, ChangeRequest, ChangeStatus
    from governance.roles import Role, team_role_permission

    User = get_user_model()
    teams = Team.objects.bulk_create([Team(name=f"Team {n}", slug=f"team-{n}") for n in range(TEAMS)])
    environments = [Environment.objects.create(name=name, position=n, is_production=name == "prod")
                    for n, name in enumerate(["dev", "staging", "prod"])]
    cis = ConfigurationItem.objects.bulk_create([
        ConfigurationItem(name=f"ci-{n}", ci_type="service", criticality=1 + n % 4, owner_team=teams[n % TEAMS],
                          environment=environments[n % 3], tags=["bench"])
        for n in range(CIS)], batch_size=2000)
    Relationship.objects.bulk_create([
        Relationship(source=cis[n], target=cis[rng.randrange(n)], rel_type="depends_on")
        for n in range(1, CIS) for _ in range(2)], batch_size=5000, ignore_conflicts=True)

    requesters = [User.objects.create_user(f"requester{n}", password="pw") for n in range(20)]
    Group.objects.get(name=Role.REQUESTER).user_set.add(*requesters)
    reader = User.objects.create_user("carla", password="pw", first_name="Carla", last_name="Cab")
    others = [User.objects.create_user(f"cab{n}", password="pw") for n in range(5)]
    Group.objects.get(name=Role.CAB_MEMBER).user_set.add(reader, *others)
    for team in teams[:2]:
        assign_perm(team_role_permission(Role.SRE), reader, team)
    cab, sre = Group.objects.get(name=Role.CAB_MEMBER), Group.objects.get(name=Role.SRE)

    now = timezone.now()
    active = [ChangeStatus.SUBMITTED, ChangeStatus.ASSESSED, ChangeStatus.APPROVED, ChangeStatus.SCHEDULED,
              ChangeStatus.IMPLEMENTING] + [ChangeStatus.CAB_REVIEW] * 10
    rows = []
    for n in range(changes):
        start = now + timedelta(minutes=rng.randrange(-2 * 24 * 60, 60 * 24 * 60))
        status = rng.choice(active)
        emergency = rng.random() < 0.05
        touched = rng.sample(range(CIS), rng.randint(1, 3))
        radius = {cis[i].pk for i in touched} | {cis[rng.randrange(CIS)].pk for _ in range(rng.randint(0, 25))}
        rows.append((touched, ChangeRequest(
            title=f"Change {n}: upgrade ci-{touched[0]}", requester=rng.choice(requesters),
            environment=rng.choice(environments), change_type="emergency" if emergency else "normal",
            status=status, planned_start=start, planned_end=start + timedelta(hours=rng.choice([1, 2, 4, 8])),
            risk_score=(score := rng.randrange(100)),
            risk_level="critical" if score >= 75 else "high" if score >= 50 else "medium" if score >= 25 else "low",
            impacted_ci_ids=sorted(radius), implementation_plan="helm upgrade", backout_plan="helm rollback",
            review_requested_at=now - timedelta(hours=rng.randrange(72)),
            approved_at=now if status in (ChangeStatus.APPROVED, ChangeStatus.SCHEDULED) else None,
            retrospective_due=(now + timedelta(days=rng.choice([-2, 2]))) if emergency else None)))
    created = ChangeRequest.objects.bulk_create([change for _, change in rows], batch_size=1000)
    through = ChangeRequest.affected_cis.through
    through.objects.bulk_create([through(changerequest_id=change.pk, configurationitem_id=cis[i].pk)
                                 for (touched, _), change in zip(rows, created, strict=True) for i in touched],
                                batch_size=5000)
    requirements, approvals = [], []
    for change in created:
        if change.status != ChangeStatus.CAB_REVIEW:
            continue
        requirements.append(ApprovalRequirement(change=change, role=cab, count=rng.choice([1, 1, 2]),
                                                policies=["Normal changes: CAB review"], revision=1))
        if change.risk_level in ("high", "critical"):
            requirements.append(ApprovalRequirement(change=change, role=sre, count=1,
                                                    policies=["High risk in production"], revision=1))
        if rng.random() < 0.3:
            approvals.append(Approval(change=change, approver=rng.choice(others), decision="approve", role=cab,
                                      revision=1))
    ApprovalRequirement.objects.bulk_create(requirements, batch_size=5000)
    Approval.objects.bulk_create(approvals, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return reader


def time_page(client, url: str, requests: int) -> tuple[list[float], int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm: templates compiled, connection open, plans cached
        assert client.get(url).status_code == 200
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    rows = response.content.decode().count('data-number="CHG')
    return timings, len(queries), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the scratch database for EXPLAIN ANALYZE")
    options = parser.parse_args()
    admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    admin(scratch_url(BENCH_DB), f"CREATE DATABASE {BENCH_DB}")
    try:
        setup_django(scratch_url(BENCH_DB), test_environment=True)
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        reader = build(options.changes, random.Random(SEED))
        print(f"built {options.changes:,} open changes on {CIS:,} CIs in {time.perf_counter() - started:.1f} s")
        client = Client()
        client.force_login(reader)
        failed = False
        for label, url in [("first page", "/changes/"),
                           ("awaiting me", "/changes/?awaiting_me=on"),
                           ("filtered", "/changes/?risk_level=high&status=cab_review&team=team-1"),
                           ("page 40", "/changes/?page=40")]:
            timings, queries, rows = time_page(client, url, options.requests)
            median = statistics.median(timings)
            verdict = ""
            if label == "first page":
                failed = median >= TARGET_MS or rows != 50
                verdict = f"; target < {TARGET_MS:.0f} ms: {'FAIL' if failed else 'PASS'}"
            print(f"{label:12} {url:60} {rows:3} rows, {queries:2} queries, {options.requests} requests: "
                  f"median {median:6.1f} ms, min {min(timings):6.1f} ms, max {max(timings):6.1f} ms{verdict}")
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep:
            admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
