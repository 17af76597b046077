"""Blast-radius benchmark: cmdb.selectors.impact_walk over a 100,000-CI, 400,000-relationship estate.

A plain script, not a test (pytest does not collect tests/bench). Run it from the project root:

    .venv/bin/python tests/bench/bench_blast_radius.py [--keep]

It drops and recreates its own scratch database `changeboard_bench` on the server named by DATABASE_URL
(default postgres://postgres@127.0.0.1:5432), migrates it, loads the estate with COPY, times the walks
and drops the database again, whatever happens (--keep leaves it, to EXPLAIN ANALYZE by hand). Target: a
median under 300 ms for the blast radius of core-network-0, which must hold at least 10,000 CIs. The
exit status is 0 when the target is met.

The estate is layered like a real one, in eight zones (data centres), each under one core network:

    application   relies on its services (part_of: the service is part of the app), depends on services
                  and databases, connects to queues
    service       runs on a cluster or host; depends on databases and on lower "platform" services (the
                  lowest ids of a zone are the most shared); connects to queues
    database      runs on a cluster, depends on storage; a tenth have a replica: a two-node cycle
    queue         runs on a cluster
    cluster       relies on its hosts (part_of: the host is part of the cluster), depends on storage
    host          connects to an access network, depends on storage
    storage       connects to an access network
    network       access networks connect to their zone's core network, some to the next zone's too

Infrastructure links stay in their zone; 1% of the service links and 5% of the application links cross
zones. About 10,000 random links join any two layers, 95% of them in one zone, nearly all downwards but
a few upwards, closing long cycles; 250 pairs of services depend on each other (more cycles).
"""

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BENCH_DB = "changeboard_bench"
TOTAL_CIS = 100_000
TOTAL_RELATIONSHIPS = 400_000
ZONES = 8  # data centres, each under its own core network
# Share of the links that stay in their zone, by kind; infrastructure links always do.
CROSS = {"replica": 1.0, "service": 0.99, "application": 0.95, "random": 0.95}
DUAL_HOMED = 0.1  # share of the access networks uplinked to a second core network
UPWARDS = 0.002  # share of the random cross links that point from a lower layer up to a higher one
RUNS = 10
TARGET_MS = 300.0
MIN_RADIUS = 10_000
SEED = 20_261_127
STATEMENT_TIMEOUT_S = 120

# (ci_type, count, name prefix), bottom layer first; applications take what is left of TOTAL_CIS.
LAYERS = [
    ("network", 60, None),  # a core network per zone, then access networks
    ("storage", 400, "storage"),
    ("cluster", 1_200, "cluster"),
    ("host", 18_000, "host"),
    ("database", 6_000, "db"),
    ("queue", 1_500, "queue"),
    ("service", 40_000, "svc"),
]
LAYERS.append(("application", TOTAL_CIS - sum(n for _, n, _ in LAYERS), "app"))


def server_url() -> str:
    """DATABASE_URL pointed at the scratch database (host, port, user and password kept)."""
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432"))
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_DB}", parts.query, ""))


def admin_connect(url: str) -> psycopg.Connection:
    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    )


def recreate_database(url: str) -> None:
    with admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def drop_database(url: str) -> None:
    with admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


class Estate:
    """The CIs (ids 1..TOTAL_CIS, layer by layer) and the relationship triples, built in memory."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ranges: dict[str, range] = {}
        start = 1
        for ci_type, count, _ in LAYERS:
            self.ranges[ci_type] = range(start, start + count)
            start += count
        self.edges: set[tuple[int, int, str]] = set()
        self.kinds: dict[str, int] = {}

    def zone_of(self, ci_type: str, ci_id: int) -> int:
        r = self.ranges[ci_type]
        if ci_type == "network":
            return (ci_id - r.start) % ZONES
        return (ci_id - r.start) * ZONES // len(r)

    def pick(self, ci_type: str, zone: int, local: float, *, below: int | None = None) -> int:
        """A CI of the layer, in `zone` with probability `local`, else in any zone; with `below`, a lower
        id of the same layer, skewed towards the lowest (the widely shared "platform" CIs)."""
        r = self.ranges[ci_type]
        if ci_type == "network":  # access networks only; core networks are linked explicitly
            access = range(r.start + ZONES, r.stop)
            if self.rng.random() < local:
                return self.rng.choice([i for i in access if (i - r.start) % ZONES == zone])
            return self.rng.choice(access)
        if self.rng.random() >= local:
            zone = self.rng.randrange(ZONES)
        lo = r.start + len(r) * zone // ZONES
        hi = r.start + len(r) * (zone + 1) // ZONES
        if below is not None:
            hi = min(hi, below)
            if hi <= lo:  # the zone's first CI (or a lower zone's): nothing lower in the zone
                return below
            return lo + int((hi - lo) * self.rng.random() ** 2)
        return self.rng.randrange(lo, hi)

    def add(self, source: int, target: int, rel_type: str, kind: str) -> bool:
        if source == target or (source, target, rel_type) in self.edges:
            return False
        self.edges.add((source, target, rel_type))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return True

    def link_each(self, src_type: str, dst_type: str, rel_type: str, per_ci: float, *, local: float = 1.0,
                  same_layer: bool = False, reverse: bool = False) -> None:
        """About `per_ci` links from each CI of `src_type` to `dst_type` CIs; `reverse` stores them as
        dst part_of src (the whole relying on its part)."""
        kind = f"{src_type} {'<- part_of' if reverse else rel_type} {dst_type}"
        for ci in self.ranges[src_type]:
            n = int(per_ci) + (self.rng.random() < per_ci - int(per_ci))
            zone = self.zone_of(src_type, ci)
            for _ in range(n):
                other = self.pick(dst_type, zone, local, below=ci if same_layer else None)
                if reverse:
                    self.add(other, ci, rel_type, kind)
                else:
                    self.add(ci, other, rel_type, kind)

    def build(self) -> None:
        rng, net = self.rng, self.ranges["network"]
        cores = list(net[:ZONES])
        for access in net[ZONES:]:
            zone = self.zone_of("network", access)
            self.add(access, cores[zone], "connects_to", "network connects_to core network")
            if rng.random() < DUAL_HOMED:  # also uplinked to the next zone's core
                self.add(access, cores[(zone + 1) % ZONES], "connects_to", "network connects_to core network")
        self.link_each("storage", "network", "connects_to", 1)
        self.link_each("host", "network", "connects_to", 1)
        self.link_each("host", "storage", "depends_on", 1)
        # Each host is part of one cluster, its zone's (hosts are laid out in cluster order).
        hosts, clusters = self.ranges["host"], self.ranges["cluster"]
        for host in hosts:
            cluster = clusters.start + (host - hosts.start) * len(clusters) // len(hosts)
            self.add(host, cluster, "part_of", "host part_of cluster")
        self.link_each("cluster", "storage", "depends_on", 1)
        self.link_each("database", "cluster", "runs_on", 1)
        self.link_each("database", "storage", "depends_on", 1)
        dbs = self.ranges["database"]
        for db in rng.sample(dbs, len(dbs) // 10):  # replicas, some in another zone: a two-node cycle each
            peer = self.pick("database", self.zone_of("database", db), CROSS["replica"])
            self.add(db, peer, "connects_to", "database <-> database (cycle)")
            self.add(peer, db, "connects_to", "database <-> database (cycle)")
        self.link_each("queue", "cluster", "runs_on", 1)
        self.link_each("service", "cluster", "runs_on", 0.7)
        self.link_each("service", "host", "runs_on", 0.3)
        self.link_each("service", "database", "depends_on", 1.5, local=CROSS["service"])
        self.link_each("service", "queue", "connects_to", 0.6, local=CROSS["service"])
        self.link_each("service", "service", "depends_on", 1.5, local=CROSS["service"], same_layer=True)
        svcs = self.ranges["service"]
        for svc in rng.sample(svcs, 250):  # mutually dependent services
            peer = self.pick("service", self.zone_of("service", svc), 1.0)
            self.add(svc, peer, "depends_on", "service <-> service (cycle)")
            self.add(peer, svc, "depends_on", "service <-> service (cycle)")
        self.link_each("application", "service", "part_of", 1.2, local=CROSS["application"], reverse=True)
        self.link_each("application", "service", "depends_on", 1.5, local=CROSS["application"])
        self.link_each("application", "database", "depends_on", 1, local=CROSS["application"])
        self.link_each("application", "queue", "connects_to", 0.4, local=CROSS["application"])
        if len(self.edges) > TOTAL_RELATIONSHIPS:
            raise SystemExit(f"the layered links alone are {len(self.edges):,}: lower the densities")
        # Random cross links fill up to the total, between any two layers: downwards and mostly in one
        # zone, but a few go upwards (closing long cycles) and some cross zones.
        types = [ci_type for ci_type, _, _ in LAYERS]
        while len(self.edges) < TOTAL_RELATIONSHIPS:
            a, b = rng.randrange(net.start, TOTAL_CIS + 1), rng.randrange(net.start, TOTAL_CIS + 1)
            if (a < b) == (rng.random() >= UPWARDS):
                a, b = b, a
            a_type = next(t for t in types if a in self.ranges[t])
            b_type = next(t for t in types if b in self.ranges[t])
            if a_type == b_type:
                continue
            if rng.random() < CROSS["random"]:
                b = self.pick(b_type, self.zone_of(a_type, a), 1.0)
            self.add(a, b, rng.choice(["depends_on", "connects_to", "runs_on"]),
                     "random cross link (upwards)" if a < b else "random cross link")

    def name(self, ci_type: str, prefix: str | None, ci_id: int) -> str:
        r = self.ranges[ci_type]
        if ci_type == "network":
            i = ci_id - r.start
            return f"core-network-{i}" if i < ZONES else f"access-network-{i - ZONES}"
        return f"{prefix}-z{self.zone_of(ci_type, ci_id)}-{ci_id - r.start}"


def load(estate: Estate) -> None:
    """Create the teams, COPY the CIs and the relationships in, then VACUUM ANALYZE."""
    from django.db import connection

    from cmdb.models import Team

    teams = Team.objects.bulk_create(
        [Team(name=f"Team {i}", slug=f"team-{i}") for i in range(40)]
    )
    team_ids = [t.pk for t in teams]
    now = datetime.now(UTC)
    rng = estate.rng
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # the psycopg cursor
        # As a superuser, skip the audit-capture triggers and the foreign-key checks of the load (ids
        # are consistent by construction): about five times faster.
        try:
            cursor.execute("SET session_replication_role = replica")
            triggers_off = True
        except psycopg.errors.InsufficientPrivilege:
            print("not a superuser: loading with the triggers on (slower)")
            triggers_off = False
        with cursor.copy(
            "COPY cmdb_configurationitem (id, name, ci_type, criticality, owner_team_id, lifecycle_status,"
            " region, tags, sox_scoped, phi, pci, description, attributes, created_at, updated_at)"
            " FROM STDIN"
        ) as copy:
            for ci_type, _, prefix in LAYERS:
                for ci_id in estate.ranges[ci_type]:
                    zone = estate.zone_of(ci_type, ci_id)
                    copy.write_row((
                        ci_id, estate.name(ci_type, prefix, ci_id), ci_type, rng.randint(1, 4),
                        rng.choice(team_ids), "in_service", f"zone-{zone}", f"{{zone:{zone}}}",
                        rng.random() < 0.1, False, rng.random() < 0.05, "", "{}", now, now,
                    ))
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('cmdb_configurationitem', 'id'), %s)", (TOTAL_CIS,)
        )
        with cursor.copy(
            "COPY cmdb_relationship (source_id, target_id, rel_type, created_at) FROM STDIN"
        ) as copy:
            for source, target, rel_type in sorted(estate.edges):
                copy.write_row((source, target, rel_type, now))
        if triggers_off:
            cursor.execute("SET session_replication_role = DEFAULT")
        # VACUUM too, as autovacuum soon would: it sets the visibility map that index-only scans need.
        cursor.execute("VACUUM ANALYZE cmdb_configurationitem")
        cursor.execute("VACUUM ANALYZE cmdb_relationship")


def timed(fn: Callable[[], object], runs: int = RUNS) -> tuple[list[float], object]:
    """Warm up once, then `runs` timed calls; the times in ms and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def summary(times: list[float]) -> str:
    return (f"median {statistics.median(times):,.0f} ms (min {min(times):,.0f}, max {max(times):,.0f})"
            f" over {len(times)} runs")


def walk_case(label: str, ci_id: int, direction: str, *, runs: int = RUNS, verdict: bool = False,
              layers: dict[str, range] | None = None) -> bool:
    """Time one walk and print its line; True unless `verdict` is asked and the target is missed."""
    from cmdb.selectors import impact_walk

    times, entries = timed(lambda: impact_walk(ci_id, direction=direction), runs=runs)
    median = statistics.median(times)
    depth = max((e.depth for e in entries), default=0)
    line = f"{label}: {len(entries):,} CIs, depth up to {depth}; impact_walk {summary(times)}"
    passed = len(entries) >= MIN_RADIUS and median < TARGET_MS
    if verdict:
        line += (f"; target radius >= {MIN_RADIUS:,} and median < {TARGET_MS:.0f} ms:"
                 f" {'PASS' if passed else 'FAIL'}")
    print(line)
    if layers:
        per_type = {t: sum(e.ci_id in r for e in entries) for t, r in layers.items()}
        per_depth: dict[int, int] = {}
        for e in entries:
            per_depth[e.depth] = per_depth.get(e.depth, 0) + 1
        print("    by type:  " + ", ".join(f"{t} {n:,}" for t, n in per_type.items() if n))
        print("    by depth: " + " ".join(f"{d}:{n:,}" for d, n in sorted(per_depth.items())))
    return passed or not verdict


def bench() -> bool:
    from django.core.management import call_command
    from django.db import connection

    from cmdb.models import ConfigurationItem
    from cmdb.selectors import ci_impact, impact_walk

    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrate_s = time.perf_counter() - start

    start = time.perf_counter()
    estate = Estate(random.Random(SEED))
    estate.build()
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    load(estate)
    load_s = time.perf_counter() - start
    cis = ConfigurationItem.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT rel_type, count(*) FROM cmdb_relationship GROUP BY 1 ORDER BY 2 DESC")
        by_type = cursor.fetchall()
    rels = sum(n for _, n in by_type)
    print(f"build: {generate_s + load_s:.1f} s for {cis:,} CIs and {rels:,} relationships (generate in"
          f" Python {generate_s:.1f} s, COPY + VACUUM ANALYZE {load_s:.1f} s); migrate {migrate_s:.1f} s")
    print("CIs: " + ", ".join(f"{t} {n:,}" for t, n, _ in LAYERS))
    print("relationships by type: " + ", ".join(f"{t} {n:,}" for t, n in by_type))
    print("relationships by kind:")
    for kind, count in sorted(estate.kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<42} {count:>7,}")
    estate.edges.clear()  # a web process does not hold the graph: keep the heap representative
    gc.collect()

    with connection.cursor() as cursor:  # a pathological walk fails the run instead of hanging it
        cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
        # The database with the most direct dependents, for a "shared database" case.
        cursor.execute(
            "SELECT target_id FROM cmdb_relationship WHERE target_id BETWEEN %s AND %s"
            " GROUP BY target_id ORDER BY count(*) DESC, target_id LIMIT 1",
            (estate.ranges["database"].start, estate.ranges["database"].stop - 1),
        )
        shared_db = cursor.fetchone()[0]
    names = dict(ConfigurationItem.objects.filter(
        pk__in=[shared_db, estate.ranges["service"].start, estate.ranges["application"].stop - 1]
    ).values_list("pk", "name"))
    core = ConfigurationItem.objects.get(name="core-network-0")
    print()

    # 1. The target: the blast radius of a core network.
    ok = walk_case(f"blast radius of {core.name}", core.pk, "dependents", verdict=True, layers=estate.ranges)
    # 2. Other shared CIs: the most shared platform service, the database with the most direct dependents.
    svc = estate.ranges["service"].start
    walk_case(f"blast radius of {names[svc]} (platform service)", svc, "dependents")
    walk_case(f"blast radius of {names[shared_db]} (most directly used database)", shared_db, "dependents")
    # 3. Everything a top-level application relies on.
    app = estate.ranges["application"].stop - 1
    walk_case(f"dependencies of {names[app]} (application)", app, "dependencies")

    # 4. ci_impact: both walks plus the query loading the CIs shown (3 queries).
    for ci in (core, ConfigurationItem.objects.get(pk=svc)):
        times, impact = timed(lambda ci=ci: ci_impact(ci))
        print(f"ci_impact({ci.name}): {len(impact.dependents):,} dependents + {len(impact.dependencies):,}"
              f" dependencies, {len(impact.items):,} CIs loaded; {summary(times)}")

    # 5. The largest radius: the bottom layer (networks) reaches the most; one walk each to find it.
    start = time.perf_counter()
    radii = {ci: len(impact_walk(ci, direction="dependents")) for ci in estate.ranges["network"]}
    search_s = time.perf_counter() - start
    widest = max(radii, key=radii.__getitem__)
    widest_name = ConfigurationItem.objects.get(pk=widest).name
    print(f"largest radius among the {len(radii)} networks ({len(radii)} walks, {search_s:.1f} s):"
          f" {widest_name}, {radii[widest]:,} of {cis:,} CIs")
    walk_case(f"blast radius of {widest_name} (largest)", widest, "dependents")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help=f"leave {BENCH_DB} in place afterwards (to EXPLAIN ANALYZE by hand)")
    args = parser.parse_args()
    url = server_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    recreate_database(url)
    try:
        import django

        django.setup()
        from django.db import connections

        try:
            ok = bench()
        finally:
            connections.close_all()
    finally:
        if args.keep:
            print(f"\nscratch database {BENCH_DB} kept (--keep)")
        else:
            drop_database(url)
            print(f"\nscratch database {BENCH_DB} dropped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
