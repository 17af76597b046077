"""Evidence bundle benchmark: a period of 1,000,000 ledger events and 50,000 production deployments exported, then
the same with the period doubled; the time and the worker's peak memory for each.

A plain script, not a test (pytest does not collect tests/bench). From the project root:

    .venv/bin/python tests/bench/bench_evidence.py [--events 1000000] [--deployments 50000] [--half] [--keep]
        [--reuse]

It creates its own scratch database `changeboard_bench_evidence` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens (--keep leaves it and
the periods it holds; --reuse builds bundles from what an earlier --keep left, without building again). The
ledger's signing key is tests.settings' own: AUDIT_SIGNING_KEY, one for the run, inherited by the worker.

The period is built twice over, each time by SQL in batches, so the audit trigger records every row:
- a production deployment (reported by a pipeline's service account under an allowing gate check of its own
  build) per change, each change approved by a CAB member for a window that covers the deployment; a share are
  exceptions: one deployment in 25 names no change (and its change is left unpaired), one change in 20 holds no
  test evidence;
- CMDB CIs written until the ledger holds the period's events;
then sealed and signed (a checkpoint). The first period holds N events and M deployments; the second runs from
the first's start to the end of a second round as large, so it holds 2N and 2M (--half: N/2 and M/2, then N
and M, when 2N takes too long to build here).

Each bundle is built by governance.evidence.bundle.bundle_build, the function the Celery task calls, in a worker
process of its own (spawned, not forked, so it holds nothing of this one); its peak resident memory is its own
high-water mark (VmHWM). Targets: under 300 MB and flat (within 10%) when the period doubles; under 5 minutes."""

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.scratch import admin, insert_cis, scratch_url, setup_django  # noqa: E402

BENCH_DB = "changeboard_bench_evidence"
KEPT = Path(tempfile.gettempdir()) / "bench_evidence_periods.json"
EVIDENCE_DIR = Path(tempfile.gettempdir()) / "bench_evidence_bundles"
BATCH = 10_000
SERVICES = 20
TARGET_MB = 300
TARGET_SECONDS = 300
FLAT = 1.10
SEED = 7


# --- the period ------------------------------------------------------------------------------------------------------

def estate() -> dict:
    """The services, production, the pipeline's service account and a CAB member, all given their roles before
    any period starts (the ledger shows them held)."""
    from django.contrib.auth.models import Group

    from governance.roles import Role
    from tests.factories import make_ci, make_environment, make_team, make_user

    for role in (Role.SERVICE_ACCOUNT, Role.CAB_MEMBER, Role.AUDITOR):
        Group.objects.get_or_create(name=role)
    team = make_team("bench")
    return {
        "services": [make_ci(f"service-{n:02}", team=team, sox_scoped=n % 2 == 0).pk for n in range(SERVICES)],
        "team": team.pk,
        "prod": make_environment("prod", 3, is_production=True).pk,
        "pipeline": make_user("ci-bot", Role.SERVICE_ACCOUNT).pk,
        "carl": make_user("carl", Role.CAB_MEMBER).pk,
        "rita": make_user("rita").pk,
        "auditor": make_user("audrey", Role.AUDITOR, is_superuser=True).pk,
        "cab": Group.objects.get(name=Role.CAB_MEMBER).pk,
    }


def deploy(world: dict, first: int, last: int) -> None:
    """Deployments `first` to `last` with their builds, approved changes, approvals and allowing checks, one
    statement a table; ids are the numbers themselves, so each table's rows pair by id."""
    from django.db import connection

    services = "(ARRAY[" + ",".join(map(str, world["services"])) + f"])[1 + n %% {SERVICES}]"
    digest = "'sha256:' || encode(sha256(('bench-' || n)::bytea), 'hex')"
    statements = (
        "INSERT INTO releases_artifact (id, version, digest, source_commit, build_url, created_at, signature,"
        " signature_status, provenance, created_by_id, service_id)"
        f" SELECT n, '1.0.' || n, {digest}, '', '', now(), '', 'unsigned', '{{}}', %(pipeline)s, {services}"
        " FROM generate_series(%(first)s, %(last)s) AS n",
        "INSERT INTO governance_changerequest (id, number, title, description, change_type, status, planned_start,"
        " planned_end, implementation_plan, test_evidence, backout_plan, release_strategy, strategy_reason,"
        " feature_flags, risk_level, risk_factors, recommended_strategy, impacted_ci_ids, revision, approved_at,"
        " retrospective_notes, created_at, updated_at, environment_id, requester_id, pinned_digests, rolls_back,"
        " recommended_strategy_reason, compliance_at_submission)"
        " SELECT n, 'CHG' || lpad(n::text, 9, '0'), 'Release ' || n, '', 'normal', 'completed', now(),"
        " now() + interval '4 hours', 'deploy', CASE WHEN n %% 20 = 0 THEN '' ELSE 'tests passed' END, 'roll back',"
        " 'all_at_once', '', '{}', (ARRAY['low', 'medium', 'high'])[1 + n %% 3], '[]', 'all_at_once', '{}', 1,"
        f" now() - interval '1 second', '', now(), now(), %(prod)s, %(rita)s, ARRAY[{digest}], false, '', '{{}}'"
        " FROM generate_series(%(first)s, %(last)s) AS n",
        "INSERT INTO governance_approval (id, decision, comment, revision, created_at, approver_id, role_id,"
        " change_id)"
        " SELECT n, 'approve', '', 1, now() - interval '1 second', %(carl)s, %(cab)s, n"
        " FROM generate_series(%(first)s, %(last)s) AS n",
        "INSERT INTO governance_deploymentcheck (id, digest, decision, reasons, asked_at, valid_until, artifact_id,"
        " asked_by_id, change_id, environment_id, service_id)"
        f" SELECT md5('check-' || n)::uuid, {digest}, 'allow', '[]', now(), now() + interval '15 minutes', n,"
        f" %(pipeline)s, n, %(prod)s, {services}"
        " FROM generate_series(%(first)s, %(last)s) AS n",
        "INSERT INTO releases_deployment (id, number, status, change_number, check_id, started_at, finished_at,"
        " artifact_id, environment_id, reported_by_id, service_id, halt_reason, kind, manual_steps,"
        " caused_failure)"
        " SELECT n, 'DEP' || lpad(n::text, 9, '0'), 'succeeded',"
        " CASE WHEN n %% 25 = 0 THEN '' ELSE 'CHG' || lpad(n::text, 9, '0') END, md5('check-' || n)::uuid,"
        f" now(), now() + interval '5 minutes', n, %(prod)s, %(pipeline)s, {services}, '', 'reported', '', false"
        " FROM generate_series(%(first)s, %(last)s) AS n",
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, {**world, "first": first, "last": last})


def fill(world: dict, first: int, last: int) -> None:
    """CMDB CIs `first` to `last`: the rest of the period's events, one per row."""
    from django.db import connection

    with connection.cursor() as cursor:
        insert_cis(cursor, world["team"], first, last)


# The events each deployment leaves: its build, change, approval, check and itself.
EVENTS_PER_DEPLOYMENT = 5


def period_round(world: dict, *, events: int, deployments: int, offset: int) -> dict:
    """One round: `deployments` deployments numbered from offset + 1 and CIs up to `events` events, sealed and
    signed; the times it spanned."""
    from django.utils import timezone

    from governance.audit.ledger import audit_checkpoint_create, audit_seal

    start = timezone.now()
    for first in range(offset + 1, offset + deployments + 1, BATCH):
        deploy(world, first, min(first + BATCH - 1, offset + deployments))
    fillers = max(events - EVENTS_PER_DEPLOYMENT * deployments, 0)
    base = offset * 100  # CI names stay distinct across rounds
    for first in range(base + 1, base + fillers + 1, 100_000):
        fill(world, first, min(first + 99_999, base + fillers))
    built = timezone.now()
    sealed = audit_seal(batch=20_000)
    audit_checkpoint_create()
    return {"start": start.isoformat(), "end": timezone.now().isoformat(),
            "seconds": {"write": (built - start).total_seconds(), "seal": (timezone.now() - built).total_seconds()},
            "sealed": sealed}


def build_periods(events: int, deployments: int) -> dict:
    """The estate, then two rounds of `events` and `deployments`: the first period is the first round, the
    doubled one both."""
    from django.db import connection

    from governance.audit.ledger import audit_checkpoint_create

    world = estate()
    audit_checkpoint_create()  # the period's chain is anchored by a checkpoint before it
    time.sleep(0.01)
    rounds = []
    for number in range(2):
        started = time.perf_counter()
        rounds.append(period_round(world, events=events, deployments=deployments, offset=number * deployments))
        print(f"   round {number + 1}: {deployments:,} deployments and {rounds[-1]['sealed']:,} events sealed in "
              f"{time.perf_counter() - started:.0f} s (write {rounds[-1]['seconds']['write']:.0f} s, seal and "
              f"sign {rounds[-1]['seconds']['seal']:.0f} s)")
        time.sleep(0.01)
    with connection.cursor() as cursor:  # ids were given: the identity columns move past them
        for table in ("releases_artifact", "governance_changerequest", "governance_approval", "releases_deployment"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # What autovacuum does to a live database long before anyone exports a period: the planner's statistics
        # and the freshly written rows' visibility (this machine's server runs with autovacuum off, so unvacuumed
        # tables would be scanned with the row estimates of empty ones).
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
        print(f"   vacuumed and analysed, as autovacuum would, in {time.perf_counter() - started:.0f} s")
    return {"auditor": world["auditor"], "events": events, "deployments": deployments,
            "periods": [{"start": rounds[0]["start"], "end": rounds[0]["end"]},
                        {"start": rounds[0]["start"], "end": rounds[1]["end"]}]}


# --- the worker ------------------------------------------------------------------------------------------------------

def peak_kb() -> int:
    """This process's peak resident memory since it started (VmHWM): ru_maxrss would also count the peak of the
    process it was forked from, which Linux carries across exec."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def worker(url: str, bundle_id: int, results) -> None:
    """A worker process: Django set up as a worker's is, then the task's own build; its time and peak memory."""
    setup_django(url)
    from governance.evidence.bundle import bundle_build

    ready_kb = peak_kb()
    started = time.perf_counter()
    bundle_build(bundle_id)
    results.put({"seconds": time.perf_counter() - started, "ready_kb": ready_kb,
                 "peak_kb": peak_kb()})


def export(url: str, kept: dict, period: dict, label: str) -> dict:
    """The bundle of `period`, requested as an auditor would and built in a worker process; what it measured."""
    from governance.evidence.bundle import bundle_path
    from governance.models import EvidenceBundle

    bundle = EvidenceBundle.objects.create(period_start=datetime.fromisoformat(period["start"]),
                                           period_end=datetime.fromisoformat(period["end"]), seed=SEED,
                                           requested_by_id=kept["auditor"])
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=worker, args=(url, bundle.pk, results))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"{label}: the worker process ended with exit code {process.exitcode}")
    measured = results.get(timeout=10)
    bundle.refresh_from_db()
    if bundle.status != EvidenceBundle.Status.READY:
        raise SystemExit(f"{label}: the bundle failed: {bundle.error}")
    with zipfile.ZipFile(bundle_path(bundle)) as archive:
        files = json.loads(archive.read("manifest.json"))["files"]
    bundle_path(bundle).unlink()
    measured.update(size=bundle.size_bytes, files=files)
    peak_mb, size_mb = measured["peak_kb"] / 1024, (bundle.size_bytes or 0) / 2**20
    print(f"\n{label}: built in {measured['seconds']:.0f} s, worker peak {peak_mb:,.0f} MB "
          f"({measured['ready_kb'] / 1024:,.0f} MB once Django was set up), bundle {size_mb:,.1f} MB")
    pdfs = sum(entry["name"].startswith("changes/") for entry in files)
    print("   rows: " + ", ".join(f"{entry['name']} {entry['rows']:,}" for entry in files
                                  if entry["rows"] is not None and not entry["name"].startswith("changes/"))
          + f"; {pdfs} sampled changes' evidence PDFs")
    return measured


def verdict(small: dict, large: dict) -> bool:
    """Print each target's outcome; True when one is missed."""
    small_mb, large_mb = small["peak_kb"] / 1024, large["peak_kb"] / 1024
    checks = (
        (f"peak memory under {TARGET_MB} MB (the larger period: {large_mb:,.0f} MB)", large_mb < TARGET_MB),
        (f"memory flat when the period doubles ({small_mb:,.0f} MB -> {large_mb:,.0f} MB, "
         f"{large_mb / small_mb - 1:+.0%}; within {FLAT - 1:.0%})", large_mb <= small_mb * FLAT),
        (f"time under {TARGET_SECONDS // 60} minutes (the larger period: {large['seconds']:.0f} s)",
         large["seconds"] < TARGET_SECONDS),
    )
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return not all(ok for _, ok in checks)


def run(url: str, options) -> bool:
    import os

    os.environ["EVIDENCE_DIR"] = str(EVIDENCE_DIR)  # read by this process's settings and the worker's
    setup_django(url)
    from django.core.management import call_command

    if options.reuse:
        kept = json.loads(KEPT.read_text())
    else:
        call_command("migrate", verbosity=0)
        halved = 2 if options.half else 1
        events, deployments = options.events // halved, options.deployments // halved
        print(f"building two rounds of {deployments:,} production deployments and {events:,} ledger events")
        kept = build_periods(events, deployments)
        if options.keep:
            KEPT.write_text(json.dumps(kept))
    n, m = kept["events"], kept["deployments"]
    small = export(url, kept, kept["periods"][0], f"period of {n:,} events, {m:,} deployments")
    large = export(url, kept, kept["periods"][1], f"period of {2 * n:,} events, {2 * m:,} deployments (doubled)")
    return verdict(small, large)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="ledger events in the period (the doubled one: twice as many)")
    parser.add_argument("--deployments", type=int, default=50_000, help="production deployments in it")
    parser.add_argument("--half", action="store_true",
                        help="compare N/2 with N instead of N with 2N (when 2N takes too long to build)")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database and its periods")
    parser.add_argument("--reuse", action="store_true", help="export the periods an earlier --keep left")
    options = parser.parse_args()
    options.keep = options.keep or options.reuse
    if options.reuse and not KEPT.exists():
        parser.error(f"nothing to reuse: run with --keep first ({KEPT} is missing)")
    url = scratch_url(BENCH_DB)
    if not options.reuse:
        KEPT.unlink(missing_ok=True)
        admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin(url, f"CREATE DATABASE {BENCH_DB}")
    failed = True
    try:
        failed = run(url, options)
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep:
            admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
