"""Release calendar benchmark: 1,000 freeze windows, their occurrences, and the two questions asked most.

A plain script, not a test (pytest does not collect tests/bench). From the project root:

    .venv/bin/python tests/bench/bench_calendar.py [--freezes 1000] [--repeat 200] [--broad] [--keep]

It creates its own scratch database `changeboard_bench_calendar` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens (--keep leaves it).
The estate: 2,000 CIs of every type, tier and compliance flag; 1,000 freeze windows, half of them once (an hour
to five days within the coming year), half recurring: weekly and monthly RFC 5545 rules and last-business-day
rules of the month or quarter with regional holidays, in six time zones, with scopes from "everything" to a
few CIs, by environment, CI type, tag, tier and compliance flags, and combinations (see `scope`); 40 lockdowns
(two still active, narrow); 30 maintenance windows; 2,000 open changes over the next 60 days.

1. Refresh: every window's occurrences recomputed (the daily task), timed.
2. "Which freezes and lockdowns cover this CI now": selectors.freezes_covering for one CI over
   [now, now + 1 us] and selectors.lockdowns_covering, a different CI each time.       target: median < 5 ms
3. The next 5 slots for a change: schedule_suggestions.                    target: median < 100 ms
"""

import argparse
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.scratch import admin, scratch_url, setup_django  # noqa: E402

BENCH_DB = "changeboard_bench_calendar"
COVER_TARGET_MS = 5.0
SUGGEST_TARGET_MS = 100.0
CIS = 2_000
CHANGES = 2_000
SEED = 20_261_127
ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "UTC"]
REGIONS = ["GB", "US", "IN", "JP", "AU", "DE", ""]
RULES = ["FREQ=WEEKLY;BYDAY=FR", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=WEEKLY;BYDAY=MO,WE", "FREQ=WEEKLY;BYDAY=TU",
         "FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYMONTHDAY=15",
         "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH"]
TAGS = ["payments", "ledger", "cards", "edge", "kafka", "k8s", "database", "batch", "reporting", "crypto"]








def estate(rng: random.Random):
    from cmdb.choices import CIType
    from cmdb.models import ConfigurationItem, Environment, Team

    team = Team.objects.create(name="Bench", slug="bench")
    prod = Environment.objects.create(name="prod", position=3, is_production=True)
    staging = Environment.objects.create(name="staging", position=2)
    ConfigurationItem.objects.bulk_create([ConfigurationItem(
        name=f"ci-{n:05d}", ci_type=rng.choice(CIType.values), criticality=rng.randint(1, 4), owner_team=team,
        tags=rng.sample(TAGS, rng.randint(0, 3)), sox_scoped=rng.random() < 0.3, phi=rng.random() < 0.1,
        pci=rng.random() < 0.2) for n in range(CIS)], batch_size=1000)
    return prod, staging, list(ConfigurationItem.objects.order_by("pk"))


def scope(rng: random.Random, cis, environments, broad: bool) -> tuple[dict, list, list]:
    """(fields, environments, CIs) of one random scope, as teams write them: 1% everything, 4% a whole
    environment, 55% a few named CIs, the rest two or more conditions on CI type, tags, tier and compliance
    flags; most within one environment."""
    from cmdb.choices import CIType

    if broad:
        return broad_scope(rng, cis, environments)
    kind = rng.random()
    if kind < 0.01:
        return {"everything": True}, [], []
    if kind < 0.05:
        return {}, [rng.choice(environments)], []
    envs = [rng.choice(environments)] if rng.random() < 0.7 else []
    if kind < 0.60:
        return {}, envs, rng.sample(cis, rng.randint(1, 5))
    conditions = [("ci_types", lambda: rng.sample(CIType.values, rng.randint(1, 2))),
                  ("tags", lambda: rng.sample(TAGS, rng.randint(1, 2))), ("max_criticality", lambda: 1),
                  ("sox_scoped", lambda: True), ("phi", lambda: True), ("pci", lambda: True)]
    return {name: value() for name, value in rng.sample(conditions, rng.randint(2, 3))}, envs, []


def broad_scope(rng: random.Random, cis, environments) -> tuple[dict, list, list]:
    """The stress case (--broad): 2% everything, then each condition set independently, so a quarter of the
    scopes are whole environments and many others a single wide condition (tier 1-2, one tag, one type)."""
    from cmdb.choices import CIType

    if rng.random() < 0.02:
        return {"everything": True}, [], []
    fields: dict = {}
    envs = [rng.choice(environments)] if rng.random() < 0.6 else []
    items = rng.sample(cis, rng.randint(1, 5)) if rng.random() < 0.25 else []
    for name, chance, value in (("ci_types", 0.2, lambda: rng.sample(CIType.values, rng.randint(1, 2))),
                                ("tags", 0.25, lambda: rng.sample(TAGS, rng.randint(1, 2))),
                                ("max_criticality", 0.25, lambda: rng.randint(1, 2)),
                                ("sox_scoped", 0.15, lambda: True), ("phi", 0.05, lambda: True),
                                ("pci", 0.1, lambda: True)):
        if rng.random() < chance:
            fields[name] = value()
    if not (fields or envs or items):
        envs = [rng.choice(environments)]
    return fields, envs, items


def windows(rng: random.Random, count: int, cis, environments, broad: bool) -> None:
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from governance.models import FreezeWindow, MaintenanceWindow
    from governance.models.calendar import Recurrence

    owner = Group.objects.get(name="business_owner")
    today = timezone.now().date()
    made = []
    for n in range(count):
        fields, envs, items = scope(rng, cis, environments, broad)
        soft = rng.random() < 0.2
        common = {"name": f"freeze {n:04d}", "timezone": rng.choice(ZONES), "severity": "soft" if soft else "hard",
                  "extra_approval_role": owner if soft else None, **fields}
        if n % 2 == 0:
            start = today + timedelta(days=rng.randint(-20, 380))
            made.append((FreezeWindow(**common, recurrence=Recurrence.ONCE, start_date=start,
                                      start_time=f"{rng.randint(0, 23):02d}:00",
                                      duration_minutes=rng.randint(1, 120) * 60), envs, items))
        elif n % 6 in (1, 3):
            rule = rng.choice([*RULES, "FREQ=DAILY"] if broad else RULES)
            made.append((FreezeWindow(**common, recurrence=Recurrence.RRULE, rrule=rule,
                                      start_date=date(2026, 1, 1) + timedelta(days=rng.randint(0, 200)),
                                      start_time=f"{rng.randint(0, 23):02d}:00",
                                      duration_minutes=rng.randint(1, 10 if broad else 6) * 60), envs, items))
        else:
            made.append((FreezeWindow(
                **common, recurrence=rng.choice([Recurrence.LAST_BUSINESS_DAYS_OF_MONTH,
                                                 Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER]),
                business_days=rng.randint(1, 5), holiday_region=rng.choice(REGIONS), start_date=date(2025, 1, 1),
                start_time="00:00", duration_minutes=24 * 60), envs, items))
    FreezeWindow.objects.bulk_create([w for w, _, _ in made])
    link(FreezeWindow, made)
    nights = []
    for n in range(30):
        fields, envs, items = scope(rng, cis, environments, broad)
        nights.append((MaintenanceWindow(
            name=f"maintenance {n:02d}", timezone=rng.choice(ZONES), recurrence=Recurrence.RRULE,
            rrule=rng.choice(["FREQ=WEEKLY;BYDAY=TU,TH", "FREQ=DAILY", "FREQ=WEEKLY;BYDAY=SU"]),
            start_date=date(2026, 1, 1), start_time="22:00", duration_minutes=240, enforcement="flag",
            **fields), envs, items))
    MaintenanceWindow.objects.bulk_create([w for w, _, _ in nights])
    link(MaintenanceWindow, nights)


def link(model, made) -> None:
    environments, cis = model.environments.through, model.cis.through
    key = model._meta.model_name + "_id"
    environments.objects.bulk_create([environments(**{key: w.pk, "environment_id": e.pk})
                                      for w, envs, _ in made for e in envs])
    cis.objects.bulk_create([cis(**{key: w.pk, "configurationitem_id": c.pk}) for w, _, items in made for c in items])


def lockdowns(rng: random.Random, prod, cis) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from governance.models import Lockdown

    ines = get_user_model().objects.create_user("ines")
    now = timezone.now()
    for n in range(40):
        declared = now - timedelta(days=rng.randint(1, 300))
        active = n < 2
        lockdown = Lockdown.objects.create(
            reason=f"INC-{n}", declared_by=ines, declared_at=declared, tags=[TAGS[n % len(TAGS)]] if active else [],
            lifted_at=None if active else declared + timedelta(hours=rng.randint(1, 12)),
            lifted_by=None if active else ines)
        lockdown.environments.set([prod])
        if not active:
            lockdown.cis.set(rng.sample(cis, 3))


def changes(rng: random.Random, prod, staging, cis) -> list:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from governance.models import ChangeRequest
    from governance.models import ChangeStatus as S

    riya = get_user_model().objects.create_user("riya")
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    made = []
    for n in range(CHANGES):
        start = now + timedelta(hours=rng.randint(1, 24 * 60))
        own = rng.sample(cis, rng.randint(1, 3))
        made.append((ChangeRequest(
            title=f"change {n}", requester=riya, environment=prod if n % 3 else staging, planned_start=start,
            planned_end=start + timedelta(hours=rng.randint(1, 4)),
            status=rng.choice([S.CAB_REVIEW, S.APPROVED, S.SCHEDULED, S.SUBMITTED]),
            impacted_ci_ids=sorted({c.pk for c in own} | {c.pk for c in rng.sample(cis, rng.randint(0, 20))})), own))
    ChangeRequest.objects.bulk_create([c for c, _ in made], batch_size=1000)
    through = ChangeRequest.affected_cis.through
    through.objects.bulk_create([through(changerequest_id=c.pk, configurationitem_id=ci.pk)
                                 for c, own in made for ci in own], batch_size=5000)
    return [c for c, _ in made]


def timed(function, repeat: int) -> list[float]:
    times = []
    for n in range(repeat):
        started = time.perf_counter()
        function(n)
        times.append((time.perf_counter() - started) * 1000)
    return times


def figures(times: list[float]) -> str:
    ordered = sorted(times)
    return (f"median {statistics.median(times):.2f} ms, p90 {ordered[int(len(ordered) * 0.9)]:.2f} ms, "
            f"max {ordered[-1]:.2f} ms over {len(times)} runs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--freezes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="leave the scratch database for EXPLAIN ANALYZE")
    parser.add_argument("--broad", action="store_true",
                        help="a stress case: wide scopes and daily freezes, so many cover any one CI at a time")
    options = parser.parse_args()
    admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    admin(scratch_url(BENCH_DB), f"CREATE DATABASE {BENCH_DB}")
    try:
        setup_django(scratch_url(BENCH_DB))
        from django.core.management import call_command
        from django.db import connection, reset_queries
        from django.utils import timezone

        from governance.calendar import selectors
        from governance.calendar.services import calendar_occurrences_refresh
        from governance.changes.scheduling import schedule_suggestions
        from governance.models import Occurrence

        call_command("migrate", verbosity=0)
        rng = random.Random(SEED)
        prod, staging, cis = estate(rng)
        windows(rng, options.freezes, cis, [prod, staging], options.broad)
        lockdowns(rng, prod, cis)
        open_changes = changes(rng, prod, staging, cis)
        started = time.perf_counter()
        stored = calendar_occurrences_refresh()
        elapsed = time.perf_counter() - started
        assert stored == Occurrence.objects.count()
        print(f"1. refresh   {options.freezes:,} freeze and 30 maintenance windows: {stored:,} occurrences "
              f"in {elapsed:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

        def covering(n: int) -> None:
            ci, now = cis[(n * 7919) % len(cis)], timezone.now()
            selectors.freezes_covering([ci], prod.pk, now, now + timedelta(microseconds=1))
            selectors.lockdowns_covering([ci], prod.pk, now)

        covering(0)  # warm the connection
        cover_times = timed(covering, options.repeat)
        now = timezone.now()
        hits = sum(len(selectors.freezes_covering([ci], prod.pk, now, now + timedelta(microseconds=1)))
                   for ci in cis[:200])
        connection.force_debug_cursor = True
        reset_queries()
        covering(1)
        queries = len(connection.queries)
        connection.force_debug_cursor = False
        median = statistics.median(cover_times)
        print(f"2. covering  {figures(cover_times)}; {queries} queries; {hits} freezes cover the first 200 CIs "
              f"now; target < {COVER_TARGET_MS:.0f} ms: {'PASS' if median < COVER_TARGET_MS else 'FAIL'}")

        subjects = open_changes[:: max(1, len(open_changes) // 50)][:50]
        found: list[int] = []

        def suggesting(n: int) -> None:
            change = subjects[n % len(subjects)]
            found.append(len(schedule_suggestions(change, count=5)))

        suggesting(0)
        found.clear()
        suggest_times = timed(suggesting, min(options.repeat, 50))
        got_five = f"{found.count(5)} of {len(found)} changes got 5 slots"
        connection.force_debug_cursor = True
        reset_queries()
        suggesting(1)
        queries = len(connection.queries)
        connection.force_debug_cursor = False
        median = statistics.median(suggest_times)
        print(f"3. suggest   {figures(suggest_times)}; {queries} queries; {got_five} (the others are frozen, "
              "locked down or busy for much of the 60 days); "
              f"target < {SUGGEST_TARGET_MS:.0f} ms: {'PASS' if median < SUGGEST_TARGET_MS else 'FAIL'}")
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep:
            admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
