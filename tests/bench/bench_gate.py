"""Deployment check benchmark: the gate served as in production, under 16 concurrent pipelines, beside a trivial
authenticated endpoint on the same server.

A plain script, not a test (pytest does not collect tests/bench). From the project root:

    .venv/bin/python tests/bench/bench_gate.py [--seconds 20] [--rounds 4] [--clients 16] [--workers 4]
        [--worker-class sync|gthread] [--threads 1] [--keep] [--reuse]

It creates its own scratch database `changeboard_bench_gate` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens (--keep leaves it,
to profile by hand, with its questions in the temporary directory; --reuse then serves it again without building,
under a new token: the checks of earlier runs stay in it, and as the clock moves on from the build, changes'
windows close and freezes end, so reuse it within the hour to measure the same decisions).

The estate: 10,000 CIs in 25 teams with 20,000 dependencies; dev, staging and prod, with
gate policies (prod: signed builds, passed SAST and dependency scans, no critical finding); 50,000 changes over
every state, environment and a year of windows, each touching 1 to 3 CIs; 1,000 freeze windows and 30
maintenance windows as tests/bench/bench_calendar.py makes them, their occurrences computed (a hard freeze of a
whole environment that happens to cover now is made soft, see choose_targets); an incident freeze on now for
a few services, an active lockdown on three, 20 lifted ones. 600 services (prod for 4 in 5, else staging; 85%
of them under no hard freeze now) have a change, approved, scheduled or implementing, whose window covers now;
each has three signed builds, the older two live everywhere, the newest passed dev and staging with its scans;
a few candidates failed a scan, are unsigned, or meet a deployment still running; a third of the changes are
pinned to their build. The ledger is sealed, the database vacuumed and analysed.

The server: gunicorn as docker-compose.yml starts it (governance.wsgi:application, access log on), with the
production settings (governance.settings: DEBUG off, a SECRET_KEY, an AUDIT_SIGNING_KEY, ALLOWED_HOSTS
127.0.0.1) on the scratch database, bound to 127.0.0.1 on a free port. As behind the TLS proxy of production,
SECURE_PROXY_SSL_HEADER=true and every request says X-Forwarded-Proto: https, so SECURE_SSL_REDIRECT and HSTS
stay on and plain HTTP on loopback is served. Default: 4 sync workers (2 per core of a 2-core machine: a sync
worker waits on PostgreSQL, on the same cores, for a good part of a check; sync workers close the connection
after each answer, so clients reconnect each time, as behind a proxy without upstream keep-alive).
--worker-class gthread --threads N tries threads (keep-alive kept).

The load: --clients threads (16) in this process, each with its own http.client connection, each sending its
next request as soon as the previous answer is read (a closed loop). A warm-up of both endpoints (5 s each),
then --rounds (4) alternations of trivial and check, --seconds (20) in all for each, so that whatever else runs
on the machine weighs on both alike:

    trivial  GET /api/v1/audit/public-key/ with the pipeline's Bearer token: authentication (one query), the
             IsAuthenticated permission, a four-field serializer; no other query
    check    POST /api/v1/deployment-checks/, a mix of questions: 85% the right build under the service's own
             change (allowed unless a freeze, lockdown, failed scan, missing signature or running deployment
             says no), 5% an older build (out of order), 4% an unknown digest, 6% another change

Every answer must be a 200; allow and deny and the reasons are counted. Printed: requests/s, p50/p95/p99
latency of both, the ratio, PASS/FAIL for      check throughput >= 0.5 x trivial, check p99 < 50 ms
and the CPU each side used (from /proc: gunicorn's processes, the PostgreSQL backends of the scratch database,
this load generator, anything else on the machine), so the server CPU a request costs is known, and a noisy
neighbour shows. Exit status 0 when both targets are met.
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.scratch import admin, scratch_url, setup_django  # noqa: E402

# The environment as the caller gave it, before tests.settings (used here to build the data) adds its own.
CALLER_ENV = dict(os.environ)

BENCH_DB = "changeboard_bench_gate"
CIS = 10_000
CHANGES = 50_000
FREEZES = 1_000
TEAMS = 25
TARGETS = 600  # services with a deployable change covering now
OTHER_BUILT = 1_500  # services with builds but no change now
RATIO_TARGET = 0.5
P99_TARGET_MS = 50.0
SEED = 20_261_127
TRIVIAL = "/api/v1/audit/public-key/"
CHECK = "/api/v1/deployment-checks/"


# --- the data --------------------------------------------------------------------------------------------------

@dataclass
class World:
    token: str = ""
    questions: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    frozen_share: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def digest_of(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def estate(rng: random.Random, cis_count: int):
    from cmdb.choices import CIType
    from cmdb.models import ConfigurationItem, Environment, Relationship, Team
    from releases.models import GatePolicy, ScanResult
    from tests.bench.bench_calendar import TAGS

    teams = Team.objects.bulk_create([Team(name=f"Team {n}", slug=f"team-{n}") for n in range(TEAMS)])
    dev, staging, prod = (Environment.objects.create(name=name, position=n, is_production=name == "prod")
                          for n, name in enumerate(["dev", "staging", "prod"]))
    GatePolicy.objects.create(environment=prod, require_signature=True, block_failed_scans=True, max_critical=0,
                              max_high=5, required_scans=[ScanResult.Kind.SAST, ScanResult.Kind.DEPENDENCY])
    GatePolicy.objects.create(environment=staging, required_scans=[ScanResult.Kind.SAST])
    others = [t for t in CIType.values if t != CIType.SERVICE]
    cis = ConfigurationItem.objects.bulk_create([ConfigurationItem(
        name=f"svc-{n:05d}" if n < cis_count // 2 else f"ci-{n:05d}",
        ci_type=CIType.SERVICE if n < cis_count // 2 else rng.choice(others),
        criticality=rng.randint(1, 4), owner_team=teams[n % TEAMS], environment=rng.choice([dev, staging, prod]),
        tags=rng.sample(TAGS, rng.randint(0, 3)), sox_scoped=rng.random() < 0.3, phi=rng.random() < 0.1,
        pci=rng.random() < 0.2) for n in range(cis_count)], batch_size=2000)
    Relationship.objects.bulk_create([
        Relationship(source=cis[n], target=cis[rng.randrange(n)], rel_type="depends_on")
        for n in range(1, cis_count) for _ in range(2)], batch_size=5000, ignore_conflicts=True)
    return teams, (dev, staging, prod), cis


def people():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from governance.access.services import api_token_create
    from governance.roles import Role

    User = get_user_model()
    boss = User.objects.create_superuser("admin", password="pw")
    requesters = [User.objects.create_user(f"requester{n}", password="pw") for n in range(50)]
    Group.objects.get(name=Role.REQUESTER).user_set.add(*requesters)
    pipeline = User.objects.create_user("pipeline", password="pw")
    Group.objects.get(name=Role.SERVICE_ACCOUNT).user_set.add(pipeline)
    token = api_token_create(actor=boss, owner=pipeline, name="bench pipeline")
    return boss, requesters, pipeline, token.secret


def changes(rng: random.Random, count: int, requesters, environments, cis, targets):
    """`count` changes: first one deployable change covering now per target (service, environment), then the
    rest over every state and a year of windows. Returns the changes of the targets, in order, and the rest."""
    from django.utils import timezone

    from governance.models import ChangeRequest
    from governance.models import ChangeStatus as S

    now = timezone.now()
    dev, staging, prod = environments
    past = [S.CLOSED] * 40 + [S.COMPLETED] * 15 + [S.CANCELLED] * 5 + [S.REJECTED] * 3 + [S.FAILED] * 2 \
        + [S.ROLLED_BACK]
    future = [S.DRAFT] * 5 + [S.SUBMITTED] * 4 + [S.ASSESSED] * 3 + [S.CAB_REVIEW] * 8 + [S.APPROVED] * 5 \
        + [S.SCHEDULED] * 5 + [S.IMPLEMENTING]
    rows = []
    for ci, environment in targets:
        start = now - timedelta(minutes=rng.randrange(0, 180))
        touched = [ci, *rng.sample(cis, rng.randint(0, 2))]
        rows.append((touched, ChangeRequest(
            title=f"Deploy {ci.name}", requester=rng.choice(requesters), environment=environment,
            status=rng.choice([S.APPROVED, S.SCHEDULED, S.IMPLEMENTING]), planned_start=start,
            planned_end=start + timedelta(hours=rng.choice([6, 8, 12])), risk_score=rng.randrange(60),
            risk_level="low", approved_at=now - timedelta(hours=2), implementation_plan="helm upgrade",
            backout_plan="helm rollback", impacted_ci_ids=sorted({c.pk for c in touched}))))
    for n in range(count - len(targets)):
        is_past = rng.random() < 0.66
        start = now + (timedelta(minutes=-rng.randrange(24 * 60, 365 * 24 * 60)) if is_past
                       else timedelta(minutes=rng.randrange(60, 60 * 24 * 60)))
        status = rng.choice(past if is_past else future)
        touched = rng.sample(cis, rng.randint(1, 3))
        rows.append((touched, ChangeRequest(
            title=f"Change {n}: {touched[0].name}", requester=rng.choice(requesters),
            environment=rng.choices([dev, staging, prod], [3, 3, 4])[0], status=status,
            change_type="emergency" if rng.random() < 0.03 else "normal", planned_start=start,
            planned_end=start + timedelta(hours=rng.choice([1, 2, 4, 8])), risk_score=(score := rng.randrange(100)),
            risk_level="critical" if score >= 75 else "high" if score >= 50 else "medium" if score >= 25 else "low",
            implementation_plan="helm upgrade", backout_plan="helm rollback",
            approved_at=start - timedelta(days=1) if status not in future[:20] else None,
            impacted_ci_ids=sorted({c.pk for c in touched}))))
    created = ChangeRequest.objects.bulk_create([change for _, change in rows], batch_size=2000)
    through = ChangeRequest.affected_cis.through
    through.objects.bulk_create([through(changerequest_id=change.pk, configurationitem_id=ci.pk)
                                 for (touched, _), change in zip(rows, created, strict=True) for ci in touched],
                                batch_size=5000, ignore_conflicts=True)
    return created[:len(targets)], created[len(targets):]


def builds(rng: random.Random, boss, pipeline, teams, environments, targets, others):
    """Three signed builds per target service (two live everywhere, the newest passed dev and staging), two per
    other built service; scans; what ran where. Returns {service pk: [v1, v2, v3]}."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.utils import timezone

    from releases.models import Artifact, Deployment, Promotion, ScanResult
    from releases.services import trusted_key_add

    now = timezone.now()
    dev, staging, prod = environments
    signers = {}
    for team in teams:
        private = Ed25519PrivateKey.generate()
        pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        signers[team.pk] = (private, trusted_key_add(actor=boss, team=team, name="ci", public_key_pem=pem))
    artifacts = []
    for ci, versions in [*[(ci, 3) for ci, _ in targets], *[(ci, 2) for ci in others]]:
        private, key = signers[ci.owner_team_id]
        for v in range(versions):
            digest = digest_of(f"{ci.name}:{v}")
            unsigned = versions == 3 and v == 2 and rng.random() < 0.03
            artifacts.append(Artifact(
                service=ci, version=f"1.{v}.0", digest=digest, created_by=pipeline,
                created_at=now - timedelta(days=30 - 10 * v, minutes=rng.randrange(600)),
                source_commit=secrets.token_hex(20), build_url=f"https://ci.example.com/{ci.name}/{v}",
                signature="" if unsigned else private.sign(digest.encode()).hex(), signed_by=None if unsigned else key,
                signature_status="unsigned" if unsigned else "valid"))
    Artifact.objects.bulk_create(artifacts, batch_size=2000)
    by_service: dict[int, list] = {}
    for artifact in artifacts:
        by_service.setdefault(artifact.service_id, []).append(artifact)
    promotions, scans, deployments = [], [], []
    running = {ci.pk for ci, _ in rng.sample(targets, max(1, len(targets) // 50))}
    target_env = {ci.pk: environment.pk for ci, environment in targets}
    for service_id, versions in by_service.items():
        for v, artifact in enumerate(versions):
            newest = v == len(versions) - 1 and len(versions) == 3
            for env in (dev, staging):
                promotions.append(Promotion(artifact=artifact, environment=env, recorded_by=pipeline,
                                            passed_at=artifact.created_at + timedelta(hours=1 + env.position)))
            failed = newest and rng.random() < 0.04
            scans.append(ScanResult(artifact=artifact, kind="sast", tool="semgrep", verdict="pass",
                                    medium=rng.randrange(5), low=rng.randrange(20), recorded_by=pipeline))
            scans.append(ScanResult(artifact=artifact, kind="dependency", tool="trivy",
                                    verdict="fail" if failed else "pass", critical=1 if failed else 0,
                                    high=rng.randrange(3), medium=rng.randrange(10), recorded_by=pipeline))
            for env in (dev, staging, prod) if not newest else (dev,):
                deployments.append(Deployment(
                    service_id=service_id, environment=env, artifact=artifact, status="succeeded",
                    check_id=uuid.uuid4(), reported_by=pipeline, started_at=artifact.created_at + timedelta(hours=3),
                    finished_at=artifact.created_at + timedelta(hours=3, minutes=10)))
            if newest and service_id in running:
                deployments.append(Deployment(
                    service_id=service_id, environment_id=target_env[service_id], artifact=versions[1],
                    status="started", check_id=uuid.uuid4(), reported_by=pipeline,
                    started_at=now - timedelta(minutes=5)))
    Promotion.objects.bulk_create(promotions, batch_size=5000)
    ScanResult.objects.bulk_create(scans, batch_size=5000)
    Deployment.objects.bulk_create(deployments, batch_size=5000)
    return by_service


def freezes_built(rng: random.Random, freezes: int, environments, cis) -> int:
    """bench_calendar's freeze windows (1,000) and 30 maintenance windows over staging and prod, with their
    occurrences."""
    from governance.calendar.services import calendar_occurrences_refresh
    from tests.bench.bench_calendar import windows

    _dev, staging, prod = environments
    windows(rng, freezes, cis, [staging, prod], False)
    return calendar_occurrences_refresh()


def choose_targets(rng: random.Random, services, environments) -> tuple[list, float, int]:
    """TARGETS (service, environment) pairs, prod for 4 in 5, 85% of them under no hard freeze now, so that the
    mix of answers does not hang on the date: bench_calendar's freezes include month ends and Fridays, and a
    hard freeze of a whole environment or of everything covering now would deny every check. Such blanket
    freezes are made soft (the gate reads them all the same, and lets soft ones through). Returns the pairs, the
    share of the services a hard freeze covers now, and how many freezes were made soft."""
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from governance.calendar.selectors import OCCURRENCE_SCOPE, covers, freeze_occurrences_between
    from governance.models import FreezeWindow

    _dev, staging, prod = environments
    now = timezone.now()
    occurrences = freeze_occurrences_between(now, now + timedelta(hours=1)).prefetch_related(*OCCURRENCE_SCOPE)
    hard = {o.freeze.pk: o.freeze for o in occurrences if o.freeze.severity == "hard"}
    blanket = [pk for pk, f in hard.items() if covers(f, None, staging.pk) or covers(f, None, prod.pk)]
    FreezeWindow.objects.filter(pk__in=blanket).update(severity="soft",
                                                       extra_approval_role=Group.objects.get(name="business_owner"))
    hard = [f for pk, f in hard.items() if pk not in blanket]
    free, frozen = [], []
    for ci in rng.sample(services, len(services)):
        environment = prod if rng.random() < 0.8 else staging
        (frozen if any(covers(f, ci, environment.pk) for f in hard) else free).append((ci, environment))
    want = min(TARGETS, len(services) // 2)
    from_free = min(len(free), max(want * 85 // 100, want - len(frozen)))
    return free[:from_free] + frozen[:want - from_free], len(frozen) / len(services), len(blanket)


def incidents(rng: random.Random, environments, cis, targets, boss) -> int:
    """An incident freeze on now for 5% of the target services in prod, an active lockdown on three of them in
    prod, 20 lifted lockdowns. Returns the occurrences stored."""
    from django.utils import timezone

    from governance.calendar.services import window_occurrences_refresh
    from governance.models import FreezeWindow, Lockdown

    _dev, _staging, prod = environments
    services = [ci for ci, environment in targets if environment == prod]
    start = timezone.now() - timedelta(hours=1)
    incident = FreezeWindow.objects.create(
        name="Payments incident freeze", severity="hard", timezone="UTC", recurrence="once", start_date=start.date(),
        start_time=start.time().replace(microsecond=0), duration_minutes=12 * 60, reason="INC-4711")
    incident.environments.set([prod])
    incident.cis.set(rng.sample(services, max(1, len(targets) // 20)))
    lockdown = Lockdown.objects.create(reason="INC-4712 ledger corruption", declared_by=boss,
                                       declared_at=timezone.now() - timedelta(minutes=30))
    lockdown.environments.set([prod])
    lockdown.cis.set(rng.sample(services, 3))
    for n in range(20):
        declared = timezone.now() - timedelta(days=rng.randint(2, 300))
        lifted = Lockdown.objects.create(reason=f"INC-{n}", declared_by=boss, declared_at=declared,
                                         lifted_at=declared + timedelta(hours=rng.randint(1, 12)), lifted_by=boss)
        lifted.environments.set([prod])
        lifted.cis.set(rng.sample(cis, 3))
    return window_occurrences_refresh(incident)


def build(options, rng: random.Random) -> World:
    from django.db import connection

    from governance.audit.ledger import audit_seal
    from governance.models import ChangeRequest

    world = World()
    with phase(world, "estate"):
        teams, environments, cis = estate(rng, options.cis)
        boss, requesters, pipeline, world.token = people()
    with phase(world, "freezes"):
        occurrences = freezes_built(rng, options.freezes, environments, cis)
        services = [ci for ci in cis if ci.ci_type == "service"]
        targets, world.frozen_share, world.counts["softened"] = choose_targets(rng, services, environments)
    with phase(world, "changes"):
        chosen = {ci.pk for ci, _ in targets}
        others = rng.sample([ci for ci in services if ci.pk not in chosen], min(OTHER_BUILT, len(services) // 3))
        target_changes, rest = changes(rng, options.changes, requesters, environments, cis, targets)
    with phase(world, "builds"):
        by_service = builds(rng, boss, pipeline, teams, environments, targets, others)
        # A third of the target changes are pinned to their build (approved for that digest only).
        pinned = []
        for change, (ci, _) in zip(target_changes, targets, strict=True):
            if rng.random() < 0.3:
                change.pinned_digests = [by_service[ci.pk][2].digest]
                pinned.append(change)
        ChangeRequest.objects.bulk_update(pinned, ["pinned_digests"], batch_size=1000)
        world.counts["occurrences"] = occurrences + incidents(rng, environments, cis, targets, boss)
    with phase(world, "seal"):
        world.counts["sealed"] = audit_seal()
    with phase(world, "vacuum"), connection.cursor() as cursor:
        # A database in its steady state: statistics, visibility maps, no autovacuum nor checkpoint due mid-run.
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
    names = {env.pk: env.name for env in environments}
    for n in range(3000):
        i = rng.randrange(len(targets))
        (ci, _), change = targets[i], target_changes[i]
        kind = rng.random()
        question = {"change": change.number, "service": ci.name, "environment": names[change.environment_id],
                    "artifact": by_service[ci.pk][2].digest}
        if kind < 0.05:
            question["artifact"] = by_service[ci.pk][0].digest
        elif kind < 0.09:
            question["artifact"] = digest_of(f"unknown {n}")
        elif kind < 0.15:
            question["change"] = rng.choice(rest).number
        world.questions.append(question)
    world.counts.update(cis=len(cis), targets=len(targets), changes=len(target_changes) + len(rest))
    return world


@contextlib.contextmanager
def phase(world: World, name: str):
    started = time.perf_counter()
    yield
    world.phases[name] = time.perf_counter() - started


# --- the server ------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, options, log) -> tuple[subprocess.Popen, int, dict]:
    """gunicorn with the production settings on the scratch database; returns once it answers."""
    port = free_port()
    overridden = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
                  "DATABASE_CONN_MAX_AGE", "USE_X_FORWARDED_FOR")
    production = {
        "DJANGO_SETTINGS_MODULE": "governance.settings", "DATABASE_URL": url, "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50), "AUDIT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_PROXY_SSL_HEADER": "true", "LOG_LEVEL": "WARNING",
        "CELERY_QUEUE": f"changeboard-bench-{uuid.uuid4().hex[:8]}",
    }
    env = {**{k: v for k, v in CALLER_ENV.items() if k not in overridden}, **production}
    command = [sys.executable, "-m", "gunicorn", "governance.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", str(options.workers), "--worker-class", options.worker_class,
               "--threads", str(options.threads), "--no-control-socket", "--access-logfile", "-",
               "--forwarded-allow-ips", "127.0.0.1"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log.name}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
            if conn.getresponse().status == 200:
                conn.close()
                return server, port, production
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within 60 s; see {log.name}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# --- the load --------------------------------------------------------------------------------------------------

@dataclass
class Run:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)
    cpu: Counter = field(default_factory=Counter)  # CPU seconds: client, gunicorn, postgres, others, machine

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    def add(self, other: "Run") -> None:
        self.seconds += other.seconds
        self.latencies_ms += other.latencies_ms
        self.statuses += other.statuses
        self.bodies += other.bodies
        self.cpu += other.cpu


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used (all but idle and iowait)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


def server_pids(server_pid: int) -> list[int]:
    """gunicorn's master and workers."""
    pids = [server_pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == server_pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def cpu_sample(server_pid: int, backends: list[int]) -> Counter:
    return Counter(client=process_cpu(os.getpid()), gunicorn=sum(process_cpu(p) for p in server_pids(server_pid)),
                   postgres=sum(process_cpu(p) for p in backends), machine=machine_cpu())


def database_backends() -> list[int]:
    """The PostgreSQL backends serving the scratch database (gunicorn's connections and this one)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()]


def load(port: int, token: str, requests_of, clients: int, seconds: float, server_pid: int = 0) -> Run:
    """`clients` threads, each on its own connection, in a closed loop for `seconds`; only the answers read
    before the deadline count. With server_pid, the CPU used meanwhile by each side is measured too."""
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https", "Accept": "application/json",
               "Content-Type": "application/json"}
    ready = threading.Barrier(clients + 1)
    finished: list[list] = [[] for _ in range(clients)]
    deadline = [0.0]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        requests, out = requests_of(n), finished[n]
        ready.wait()
        while True:
            method, path, body = next(requests)
            started = time.perf_counter()
            if started >= deadline[0]:
                break
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()  # a sync worker closes the connection: http.client opens a new one next time
            ended = time.perf_counter()
            if ended <= deadline[0]:
                out.append((ended - started, response.status, data))
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    backends = database_backends() if server_pid else []
    before = cpu_sample(server_pid, backends) if server_pid else Counter()
    deadline[0] = time.perf_counter() + seconds
    ready.wait()
    for thread in threads:
        thread.join()
    cpu = Counter()
    if server_pid:
        cpu = cpu_sample(server_pid, backends)
        cpu.subtract(before)
        cpu["others"] = max(0.0, cpu["machine"] - cpu["client"] - cpu["gunicorn"] - cpu["postgres"])
    results = [r for rs in finished for r in rs]
    return Run(seconds=seconds, latencies_ms=[r[0] * 1000 for r in results], statuses=Counter(r[1] for r in results),
               bodies=[r[2] for r in results], cpu=cpu)


def trivial_requests(n: int):
    while True:
        yield "GET", TRIVIAL, None


def check_requests(questions: list[dict], clients: int):
    """Each client goes round the questions from its own starting point."""
    bodies = [json.dumps(q).encode() for q in questions]

    def requests_of(n: int):
        i = n * len(bodies) // clients
        while True:
            yield "POST", CHECK, bodies[i % len(bodies)]
            i += 1

    return requests_of


def figures(label: str, run: Run) -> str:
    n = max(1, len(run.latencies_ms))
    per_request = f"{(run.cpu['gunicorn'] + run.cpu['postgres']) / n * 1000:.1f} ms"
    return (f"{label:8} {run.rate:6.1f} req/s  p50 {run.percentile(0.50):6.1f}  p95 {run.percentile(0.95):6.1f}  "
            f"p99 {run.percentile(0.99):6.1f}  max {max(run.latencies_ms):6.1f} ms  "
            f"({len(run.latencies_ms):,} answers, status {dict(run.statuses)}); server CPU {per_request} a request "
            f"(gunicorn {run.cpu['gunicorn'] / n * 1000:.1f} + PostgreSQL {run.cpu['postgres'] / n * 1000:.1f})")


def cpu_figures(label: str, run: Run) -> str:
    share = {k: run.cpu[k] / run.seconds for k in ("gunicorn", "postgres", "client", "others")}
    return (f"{label:8} CPU in use, in cores of {os.cpu_count()}: gunicorn {share['gunicorn']:.2f}, PostgreSQL "
            f"backends {share['postgres']:.2f}, load generator {share['client']:.2f}, anything else "
            f"{share['others']:.2f}")


def decisions(run: Run) -> tuple[Counter, Counter]:
    made, reasons = Counter(), Counter()
    for body in run.bodies:
        answer = json.loads(body)
        made[answer.get("decision", "?")] += 1
        reasons.update(reason["code"] for reason in answer.get("reasons", []))
    return made, reasons


def one_check_in_process(world: World) -> tuple[int, float]:
    """The queries of one check, and its median time over 30, through DRF's test client in this process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {world.token}")
    question = world.questions[0]
    times = []
    for _ in range(31):
        started = time.perf_counter()
        assert client.post(CHECK, question, format="json").status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.post(CHECK, question, format="json")
    return len(queries), statistics.median(times[1:])


KEPT = Path(tempfile.gettempdir()) / f"{BENCH_DB}.json"


def kept_world() -> World:
    """The questions of the kept database, asked under a new token of its pipeline account."""
    from django.contrib.auth import get_user_model

    from governance.access.services import api_token_create

    pipeline = get_user_model().objects.get(username="pipeline")
    token = api_token_create(actor=pipeline, owner=pipeline, name=f"bench pipeline {uuid.uuid4().hex[:8]}")
    return World(token=token.secret, **json.loads(KEPT.read_text()))


def run(url: str, options, log) -> bool:
    """Build (or reuse), serve, load, print; True when a target is missed."""
    setup_django(url, test_environment=True)
    from django.core.management import call_command
    from django.db import connections

    started = time.perf_counter()
    if options.reuse:
        world = kept_world()
    else:
        call_command("migrate", verbosity=0)
        world = build(options, random.Random(SEED))
        if options.keep:
            KEPT.write_text(json.dumps({"questions": world.questions, "counts": world.counts,
                                        "frozen_share": world.frozen_share, "phases": world.phases}))
    c = world.counts
    print(f"built {c['cis']:,} CIs, {c['changes']:,} changes ({c['targets']} deployable now), {options.freezes:,} "
          f"freezes ({c['occurrences']:,} occurrences; {c['softened']} blanket hard freezes on now made soft; a "
          f"hard freeze covers {world.frozen_share:.0%} of the services now), sealed {c['sealed']:,} audit events, "
          f"in {time.perf_counter() - started:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in world.phases.items())})",
          flush=True)
    connections.close_all()
    server, port, env = serve(url, options, log)
    trivial, check = Run(), Run()
    try:
        threads = f" x {options.threads} threads" if options.worker_class == "gthread" else ""
        print(f"gunicorn {options.workers} {options.worker_class} workers{threads} on 127.0.0.1:{port}, "
              f"governance.settings, DEBUG={env['DEBUG']}, SECURE_PROXY_SSL_HEADER={env['SECURE_PROXY_SSL_HEADER']} "
              f"(requests send X-Forwarded-Proto: https); {options.clients} clients; {os.cpu_count()} CPUs; "
              f"{options.rounds} rounds of {options.seconds / options.rounds:.0f} s each, alternating", flush=True)
        checks = check_requests(world.questions, options.clients)
        for requests_of in (trivial_requests, checks):  # warm every worker: imports, connections, plans
            load(port, world.token, requests_of, options.clients, options.warmup)
        for n in range(options.rounds):
            parts = []
            for total, requests_of in ((trivial, trivial_requests), (check, checks)):
                parts.append(load(port, world.token, requests_of, options.clients, options.seconds / options.rounds,
                                  server.pid))
                total.add(parts[-1])
            print(f"  round {n + 1}: " + ", ".join(
                f"{label} {part.rate:.0f} req/s, p99 {part.percentile(0.99):.0f} ms (CPU of anything else "
                f"{part.cpu['others'] / part.seconds:.2f} cores)" for label, part in zip(("trivial", "check"), parts,
                                                                                         strict=True)), flush=True)
    finally:
        stop(server)
        connections.close_all()
    print(f"trivial  GET  {TRIVIAL}")
    print(f"check    POST {CHECK}")
    print(figures("trivial", trivial))
    print(figures("check", check))
    print(cpu_figures("trivial", trivial))
    print(cpu_figures("check", check))
    made, reasons = decisions(check)
    print(f"check answers: {dict(made)}; reasons to deny {dict(reasons.most_common())}")
    ratio = check.rate / trivial.rate
    p99 = check.percentile(0.99)
    ok_ratio, ok_p99 = ratio >= RATIO_TARGET, p99 < P99_TARGET_MS
    all_200 = set(check.statuses) == {200} and set(trivial.statuses) == {200}
    print(f"throughput check/trivial {ratio:.2f} (target >= {RATIO_TARGET}): {'PASS' if ok_ratio else 'FAIL'}; "
          f"check p99 {p99:.1f} ms (target < {P99_TARGET_MS:.0f} ms): {'PASS' if ok_p99 else 'FAIL'}; "
          f"every answer 200: {'yes' if all_200 else 'NO'}")
    queries, median = one_check_in_process(world)
    print(f"one check in this process (DRF test client, tests.settings, no server): {queries} queries, "
          f"median {median:.1f} ms")
    return not (ok_ratio and ok_p99 and all_200 and made["allow"] and made["deny"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cis", type=int, default=CIS)
    parser.add_argument("--changes", type=int, default=CHANGES)
    parser.add_argument("--freezes", type=int, default=FREEZES)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration per endpoint")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up per endpoint")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two endpoints in --seconds")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database, to profile by hand")
    parser.add_argument("--reuse", action="store_true", help="serve the database an earlier --keep left")
    options = parser.parse_args()
    options.keep = options.keep or options.reuse
    url = scratch_url(BENCH_DB)
    if options.reuse and not KEPT.exists():
        parser.error(f"nothing to reuse: run with --keep first ({KEPT} is missing)")
    if not options.reuse:
        KEPT.unlink(missing_ok=True)  # its questions were for the database dropped here
        admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin(url, f"CREATE DATABASE {BENCH_DB}")
    failed = True
    log_path = Path(tempfile.gettempdir()) / f"bench_gate_gunicorn_{os.getpid()}.log"
    try:
        with log_path.open("w") as log:
            failed = run(url, options, log)
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep:
            admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if failed:
            print(f"gunicorn's log: {log_path}")
        else:
            log_path.unlink()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
