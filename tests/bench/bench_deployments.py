"""Deployment orchestration benchmark: what running a deployment costs besides the executor's own work, and how the
workers scale.

A plain script, not a test (pytest does not collect tests/bench). From the project root, with Redis on REDIS_URL
(default redis://127.0.0.1:6379/0):

    .venv/bin/python tests/bench/bench_deployments.py [--deployments 50]

It creates its own scratch database `changeboard_bench_deployments` next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432), migrates it and drops it at the end, whatever happens. Its workers take a
queue of the run's own.

The executor does nothing: a command executor whose forward and backward commands are `true` (a process is still
started for each rollout; its cost is measured here and subtracted). Each deployment has three waves and no health
checks, so six steps: before each wave the gate is asked again and the dependencies' health read (the pre-check
step), then the wave's rollout. Real Celery workers (prefork, one process each, as docker-compose.yml starts them
but with --concurrency 1) on Redis run them, with the production settings of tests.settings; the audit triggers
are on.

1. One at a time: --deployments deployments of one service to one environment, started at once, so they queue
   and run one after the other, by one worker. Each step's orchestration overhead is the time from the end of
   the step before it (or the deployment's start) to its own end, less the executor's own time: sending the task
   after commit, Redis, the worker taking it, the gate, claiming the step, the lease's heartbeat thread, recording
   the result. Printed: median and p95, split into the wait before the step is claimed and the time it is held.
   target: median < 50 ms
2. Throughput: --deployments deployments of as many services, all started at once, run by one worker, then (a new
   set) by two. Printed: total time from the first step claimed to the last deployment ended, steps/s and
   deployments/min.                                                      target: two workers faster than one
"""

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.scratch import admin, scratch_url, setup_django  # noqa: E402

BENCH_DB = "changeboard_bench_deployments"
NO_OP = ["true"]
WAVES = (("canary", ["host-1"]), ("half", ["host-2", "host-3"]), ("rest", ["host-4", "host-5", "host-6"]))


class Estate:
    """Services with a plan each (three waves, the no-op executor), a build of each promoted to dev, the people."""

    def __init__(self, services: int):
        from releases.models import DeploymentPlan, PlanWave, Promotion
        from tests.factories import make_artifact, make_ci, make_environment, make_team, make_user

        dev, self.staging = make_environment("dev", 0), make_environment("staging", 1)
        team = make_team("shop")
        builder = make_user("ci-bot")
        self.release_manager = make_user("rm", "release_manager")
        self.requester = make_user("rita", "requester")
        self.plans, self.builds = [], []
        for n in range(services):
            service = make_ci(f"svc-{n:03d}", team=team)
            build = make_artifact(service, "1.0.0", created_by=builder)
            Promotion.objects.create(artifact=build, environment=dev, recorded_by=builder)
            plan = DeploymentPlan.objects.create(service=service, environment=self.staging, executor_settings={
                "forward": NO_OP, "backward": NO_OP, "timeout_seconds": 30})
            for position, (name, targets) in enumerate(WAVES, 1):
                PlanWave.objects.create(plan=plan, position=position, name=name, targets=targets)
            self.plans.append(plan)
            self.builds.append(build)

    def start(self, plans_and_builds) -> list:
        """One approved change covering the services, and a deployment of each (plan, build) under it."""
        from governance.deployments.services import rollout_start
        from governance.models import ChangeStatus
        from tests.factories import make_change

        now = datetime.now(UTC)
        change = make_change(self.requester, cis=[plan.service for plan, _ in plans_and_builds],
                             environment=self.staging, planned_start=now - timedelta(minutes=10),
                             planned_end=now + timedelta(hours=2), status=ChangeStatus.APPROVED)
        return [rollout_start(actor=self.release_manager, change=change, plan=plan, artifact=build)
                for plan, build in plans_and_builds]


class Workers:
    """Real Celery worker processes on the scratch database and the run's queue."""

    def __init__(self, count: int):
        from django.conf import settings

        from governance.celery import app

        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        self.names = [f"bench-{uuid.uuid4().hex[:8]}@localhost" for _ in range(count)]
        self.processes = [subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "governance", "worker", "-P", "prefork", "--concurrency", "1",
             "--hostname", name, "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "ERROR"],
            env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name in self.names]
        deadline = time.monotonic() + 60
        while len(app.control.ping(destination=self.names, timeout=0.5)) < count:
            assert time.monotonic() < deadline, "the workers did not answer within 60 s"

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)


def wait_until_ended(deployments: list) -> None:
    from releases.models import Deployment

    ids = [d.pk for d in deployments]
    deadline = time.monotonic() + 30 * 60
    while Deployment.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the deployments did not end within 30 minutes"
        time.sleep(0.2)
    statuses = set(Deployment.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {"succeeded"}, f"not every deployment succeeded: {statuses}"


def executor_seconds() -> float:
    """The no-op command's own time, started as the command executor starts it (median of 50)."""
    from releases.executors.command import run_command

    return statistics.median(run_command(NO_OP, env={}, timeout=10).seconds for _ in range(50))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def step_times(deployments: list, executor: float) -> dict[str, list[float]]:
    """Per step, in seconds: the wait from the end of the step before (or the deployment's start) to its claim, the
    time it is held (claim to recorded end, less the executor's own time for a rollout), and the two together."""
    from releases.models import Deployment

    times: dict[str, list[float]] = {"overhead": [], "wait": [], "held": []}
    for deployment in Deployment.objects.filter(pk__in=[d.pk for d in deployments]).prefetch_related("steps"):
        before = deployment.started_at
        for step in sorted(deployment.steps.all(), key=lambda s: s.sequence):
            wait = (step.started_at - before).total_seconds()
            held = (step.finished_at - step.started_at).total_seconds() - (executor if step.kind == "rollout" else 0)
            times["wait"].append(wait)
            times["held"].append(held)
            times["overhead"].append(wait + held)
            before = step.finished_at
    return times


def span(deployments: list) -> tuple[float, int]:
    """From the first step claimed to the last deployment ended, and how many steps ran."""
    from django.db.models import Count, Max, Min

    from releases.models import Deployment, RolloutStep

    ids = [d.pk for d in deployments]
    first = RolloutStep.objects.filter(deployment_id__in=ids).aggregate(first=Min("started_at"), n=Count("pk"))
    last = Deployment.objects.filter(pk__in=ids).aggregate(last=Max("finished_at"))["last"]
    return (last - first["first"]).total_seconds(), first["n"]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def workers_cpu() -> float:
    """CPU seconds of the worker processes that ended (a worker's pool process is counted in it once it reaps it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Round:
    """Deployments started with no worker running (their first tasks wait in Redis), then run by `workers`; the
    CPU the workers used, and how busy the machine was meanwhile (whatever else runs on it included)."""

    def __init__(self, estate: Estate, plans_and_builds, workers: int):
        self.deployments = estate.start(plans_and_builds)
        cpu, (busy, total) = workers_cpu(), machine_cpu()
        running = Workers(workers)
        try:
            wait_until_ended(self.deployments)
        finally:
            running.stop()
        self.workers_cpu = workers_cpu() - cpu
        after = machine_cpu()
        self.machine_busy = (after[0] - busy) / (after[1] - total)

    def cpu_note(self, steps: int) -> str:
        return (f"workers' CPU {self.workers_cpu / steps * 1000:.0f} ms per step (their start included); the "
                f"machine's cores {self.machine_busy:.0%} busy meanwhile, everything on it included")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=50)
    options = parser.parse_args()
    count = options.deployments
    admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    admin(scratch_url(BENCH_DB), f"CREATE DATABASE {BENCH_DB}")
    try:
        setup_django(scratch_url(BENCH_DB))
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        estate = Estate(count)
        executor = executor_seconds()
        print(f"No-op executor: the command executor running `true` (its own time here: {ms(executor)} per "
              f"rollout, subtracted). {count} deployments of 3 waves, 6 steps each; workers: prefork, one process "
              f"each; Redis {settings.CELERY_BROKER_URL}.")

        one_service = [(estate.plans[0], estate.builds[0])] * count
        started = time.perf_counter()
        queued = Round(estate, one_service, workers=1)
        total = time.perf_counter() - started
        times = step_times(queued.deployments, executor)
        median = statistics.median(times["overhead"])
        print(f"1. one at a time, 1 worker: {len(times['overhead'])} steps in {total:.1f} s (workers' start "
              f"included); overhead per step: median {ms(median)}, p95 {ms(p95(times['overhead']))} "
              f"(wait to claim: median {ms(statistics.median(times['wait']))}, p95 {ms(p95(times['wait']))}; "
              f"held: median {ms(statistics.median(times['held']))}, p95 {ms(p95(times['held']))}); "
              f"target median < 50 ms: {'PASS' if median < 0.050 else 'FAIL'}; "
              f"{queued.cpu_note(len(times['overhead']))}")

        every_service = list(zip(estate.plans, estate.builds, strict=True))
        rates = {}
        for workers in (1, 2):
            done = Round(estate, every_service, workers=workers)
            seconds, steps = span(done.deployments)
            rates[workers] = steps / seconds
            print(f"{1 + workers}. {count} services at once, {workers} worker{'s' if workers > 1 else ''}: {steps} "
                  f"steps in {seconds:.1f} s = {steps / seconds:.1f} steps/s, "
                  f"{count / seconds * 60:.0f} deployments/min; {done.cpu_note(steps)}")
        faster = rates[2] / rates[1]
        print(f"   two workers / one: {faster:.2f}x; target > 1: {'PASS' if faster > 1 else 'FAIL'}")
    finally:
        from django.db import connections

        connections.close_all()
        admin(scratch_url(BENCH_DB), f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
