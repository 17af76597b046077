"""Deployments survive a worker killed at any moment: a real Celery worker (prefork, as in production) is SIGKILLed
at random points of real deployments, a new one is started, and again, until the deployment ends. Each ends
succeeded, or rolled back where the trial breaks a wave; no step is lost and none runs twice, by the service's own
count: its deploy tool writes each execution in a journal with the step's idempotency key.

The service's rollouts are not repeatable (the plan says so), so an interrupted one is checked with the deploy
tool, not run again. A kill takes the worker's process group, and in one kill out of two the deploy command it was
running as well (as a container's end would), so both an interrupted command and an orphan that finishes alone are
met.

The killed worker's message stays unacknowledged in Redis for the visibility timeout (hours): recovery is the
lease's expiry and the beat job. The workers get a short lease through the setting read from their environment
(DEPLOYMENT_LEASE_SECONDS), and this test calls the beat job's function itself, as often as beat would if its
period were short; the production settings are left as they are.

Random moments come from a seed, printed and named in every failure: FAULT_SEED=<seed> replays a run.
"""

import base64
import contextlib
import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from django.db import connection

from cmdb.models import Environment
from governance.celery import app
from governance.deployments.orchestration import deployments_resume_stalled
from governance.deployments.services import rollout_start
from governance.models import ChangeRequest, ChangeStatus
from releases.models import Deployment, DeploymentPlan, DeploymentStatus, Promotion, RolloutStep
from tests.conftest import database_url_of
from tests.factories import make_artifact, make_change, make_user
from tests.governance.deployments.test_rollout_worker import starts_at_once
from tests.governance.deployments.world import ended, steps_of

pytestmark = pytest.mark.django_db(transaction=True)

TRIALS = 20
LEASE_SECONDS = 2
# How often the beat job's function is called here (beat calls it every 30 s, the lease being 60 s).
SWEEP_SECONDS = 0.25
MOST_KILLS_PER_TRIAL = 3
TRIAL_TIMEOUT_SECONDS = 60

# The service's own deploy tool. Forward and backward put each target on the build (a temporary file renamed over
# the state, so a target never serves half a digest), then write the journal in one append: the journal line is
# what says a step was executed, and it is there for all of the wave's targets or none. `check` answers, from the
# journal, whether the step its idempotency key names was executed (exit 0) or not (exit 1).
SERVICE_TOOL = textwrap.dedent('''
    import os, sys
    mode, state, journal, *targets = sys.argv[1:]
    key = os.environ["CB_IDEMPOTENCY_KEY"]
    if mode == "check":
        lines = open(journal).read().splitlines() if os.path.exists(journal) else []
        sys.exit(0 if any(line.split()[-1] == key for line in lines) else 1)
    digest = os.environ["CB_ARTIFACT_DIGEST" if mode == "forward" else "CB_PREVIOUS_DIGEST"]
    for target in targets:
        served = os.path.join(state, target.replace(":", "_"))
        with open(served + ".new", "w") as new:
            new.write(digest)
        os.replace(served + ".new", served)
    lines = "".join(f"{mode} {os.environ['CB_WAVE']} {target} {digest} {key}\\n" for target in targets)
    done = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(done, lines.encode())
    os.close(done)
''')


class Worker:
    """A real Celery worker in a process group of its own, on this run's queue and the test database."""

    def __init__(self, env: dict[str, str]):
        from django.conf import settings

        self.hostname = f"fault-{uuid.uuid4().hex[:8]}@localhost"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "governance", "worker", "-P", "prefork", "--concurrency", "1",
             "--hostname", self.hostname, "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip",
             "--without-mingle", "--without-heartbeat", "--loglevel", "ERROR"],
            env=env, cwd=settings.BASE_DIR, start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[self.hostname], timeout=0.3):
            assert self.process.poll() is None, "the Celery worker exited during start-up"
            assert time.monotonic() < deadline, "the Celery worker did not answer within 30 s"

    def kill(self, *, with_commands: bool) -> None:
        """SIGKILL the worker's process group; with its commands, the deploy commands it started too (each runs in
        a session of its own, so the group alone leaves them running)."""
        os.killpg(self.process.pid, signal.SIGSTOP)  # frozen, it starts no command while its tree is read
        commands = descendants(self.process.pid) if with_commands else []
        os.killpg(self.process.pid, signal.SIGKILL)
        for pid in commands:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def progress(deployments: list[Deployment]) -> tuple:
    """What the workers have done so far to these deployments: changes whenever a step is claimed or ends."""
    return tuple(RolloutStep.objects.filter(deployment__in=deployments).order_by("pk")
                 .values_list("state", "attempt")) + tuple(
        Deployment.objects.filter(pk__in=[d.pk for d in deployments]).order_by("pk").values_list("status"))


def steps_left(deployments: list[Deployment]) -> int:
    return RolloutStep.objects.filter(deployment__in=deployments, state__in=("pending", "running")).count()


def step_pace() -> float:
    """How long a step takes here, end to end: the median time from one step's end to the next one's so far."""
    ends = RolloutStep.objects.filter(finished_at__isnull=False).order_by("deployment_id", "finished_at")
    cycles, last = [], None
    for deployment_id, finished_at in ends.values_list("deployment_id", "finished_at"):
        if last is not None and last[0] == deployment_id:
            cycles.append((finished_at - last[1]).total_seconds())
        last = (deployment_id, finished_at)
    return statistics.median(cycles) if cycles else 0.1


def all_ended(deployments: list[Deployment]) -> bool:
    return all(ended(d) for d in deployments)


def moved_since(deployments: list[Deployment], before: tuple) -> bool:
    return all_ended(deployments) or progress(deployments) != before


class Chaos:
    """Runs deployments under a worker killed at random moments, standing in for beat meanwhile."""

    def __init__(self, rng: random.Random, env: dict[str, str]):
        self.rng, self.env = rng, env
        self.worker = Worker(env)
        self.kills = Counter()

    def sweep_until(self, deadline: float, done) -> bool:
        """Until `done()` or the deadline, call the beat job's function every SWEEP_SECONDS; whether done."""
        swept = 0.0
        while time.monotonic() < deadline:
            if done():
                return True
            if time.monotonic() - swept >= SWEEP_SECONDS:
                deployments_resume_stalled()
                swept = time.monotonic()
            time.sleep(0.01)
        return done()

    def run(self, deployments: list[Deployment], *, seed_note: str) -> int:
        """Kill the worker one to MOST_KILLS_PER_TRIAL times while it works, then let the last one finish; how many
        kills landed before the deployments ended."""
        over = functools.partial(all_ended, deployments)
        give_up = time.monotonic() + TRIAL_TIMEOUT_SECONDS
        kills = 0
        for _ in range(self.rng.randint(1, MOST_KILLS_PER_TRIAL)):
            self.worker.wait_ready()
            # A moment drawn over the work left, counted from the first step this worker claims or ends.
            moved = functools.partial(moved_since, deployments, progress(deployments))
            if not self.sweep_until(give_up, moved) or over():
                break
            time.sleep(self.rng.uniform(0, steps_left(deployments) * step_pace()))
            if over():
                break
            with_commands = self.rng.random() < 0.5
            self.worker.kill(with_commands=with_commands)
            self.kills["worker and its commands" if with_commands else "worker"] += 1
            kills += 1
            self.worker = Worker(self.env)
        assert self.sweep_until(give_up, over), (
            f"{seed_note}: the deployments did not end: "
            + "; ".join(f"{d.number} {d.status} {steps_of(d)}" for d in deployments))
        return kills

    def stop(self) -> None:
        self.worker.stop()


def forget_unacked(deployment_ids: set[int]) -> int:
    """Drop from Redis the messages the killed workers took and never acknowledged (kombu keeps them in the
    `unacked` hash until the visibility timeout, then puts them back on this run's queue, which nobody reads by
    then): those of this run's queue that advance these deployments. How many."""
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    dropped = 0
    for tag, raw in broker.hscan_iter("unacked"):
        payload, _, queue = json.loads(raw)
        encoded = payload["properties"].get("body_encoding") == "base64"
        args = json.loads(base64.b64decode(payload["body"]) if encoded else payload["body"])[0]
        if queue == settings.CELERY_TASK_DEFAULT_QUEUE and args and args[0] in deployment_ids:
            broker.hdel("unacked", tag)
            broker.zrem("unacked_index", tag)
            dropped += 1
    return dropped


def journal_counts(journal: Path) -> Counter:
    """(mode, target, idempotency key) -> how many times the deploy tool executed it."""
    lines = journal.read_text().splitlines() if journal.exists() else []
    return Counter((line.split()[0], line.split()[2], line.split()[-1]) for line in lines)


def executions_expected(deployment: Deployment) -> Counter:
    """Once per target for each rollout the deployment did and each rollback of one: nothing else, nothing twice."""
    mode = {"rollout": "forward", "rollback_rollout": "backward"}
    return Counter({(mode[step.kind], target, step.idempotency_key): 1
                    for step in deployment.steps.filter(kind__in=mode, state="succeeded") for target in step.targets})


def service_tool_plan(world, tmp_path: Path) -> None:
    """The world's plan deploys with the service's own tool, its rollouts not repeatable and checked instead."""
    tool = tmp_path / "service_tool.py"
    tool.write_text(SERVICE_TOOL)
    state = world.servers[0].state_file.parent
    DeploymentPlan.objects.filter(pk=world.plan.pk).update(rollout_repeatable=False, executor_settings={
        mode: [sys.executable, str(tool), mode, str(state), str(world.journal), "{targets}"]
        for mode in ("forward", "backward", "check")} | {"timeout_seconds": 30})
    world.plan.refresh_from_db()


def trial_start(world, kind: str, trial: int, release_manager) -> list[Deployment]:
    """A new build (promoted to dev) and a new approved change, deployed once, or twice at once; for a trial whose
    wave two fails, the new build is broken on one of wave two's targets."""
    builder = make_user(f"ci-bot-{trial}")
    build = make_artifact(world.plan.service, f"2.{trial}.0", created_by=builder)
    Promotion.objects.create(artifact=build, environment=Environment.objects.get(name="dev"), recorded_by=builder)
    now = datetime.now(UTC)
    change = make_change(make_user(f"requester-{trial}", "requester"), cis=[world.plan.service],
                         environment=world.plan.environment, planned_start=now - timedelta(minutes=10),
                         planned_end=now + timedelta(hours=2), status=ChangeStatus.APPROVED)
    for server in world.servers:
        server.broken.clear()
    if kind == "wave two fails":
        world.waves["eu-west"][1].broken.add(build.digest)
    start = functools.partial(rollout_start, actor=release_manager, change=change, plan=world.plan, artifact=build)
    if kind != "two at once":
        return [start()]
    # The one that took the environment first, then the one that queued.
    return sorted(starts_at_once(world.plan, start), key=lambda d: d.status != DeploymentStatus.STARTED)


def assert_ended_as_promised(world, kind: str, deployments: list[Deployment], note: str) -> None:
    """Each deployment ended as its trial makes it end, every step done, each execution once by the journal."""
    counts = journal_counts(world.journal)
    for deployment in deployments:
        deployment.refresh_from_db()
        keys = set(deployment.steps.values_list("idempotency_key", flat=True))
        assert Counter({k: n for k, n in counts.items() if k[2] in keys}) == executions_expected(deployment), (
            f"{note}: {deployment.number}'s executions are not once per target per step")
        if kind == "wave two fails":
            assert deployment.status == DeploymentStatus.ROLLED_BACK, note
            assert [step for step in steps_of(deployment) if step[1] in ("rollout", "rollback_rollout")] == [
                ("canary", "rollout", "succeeded"), ("eu-west", "rollout", "succeeded"),
                ("us-east", "rollout", "skipped"),
                ("eu-west", "rollback_rollout", "succeeded"), ("canary", "rollback_rollout", "succeeded")], note
        else:
            assert deployment.status == DeploymentStatus.SUCCEEDED, note
            assert {state for _, _, state in steps_of(deployment)} == {"succeeded"}, note
    build, previous = deployments[0].artifact, deployments[0].previous_artifact
    if kind == "two at once":
        first, second = deployments
        assert second.started_at >= first.finished_at and second.previous_artifact == build, note
    change = ChangeRequest.objects.get(number=deployments[0].change_number)
    if kind == "wave two fails":
        assert change.status == ChangeStatus.ROLLED_BACK, note
        assert [server.serves() for server in world.servers] == [previous.digest] * 4, note
    else:
        assert change.status == ChangeStatus.COMPLETED, note
        assert [server.serves() for server in world.servers] == [build.digest] * 4, note


def test_deployments_end_with_every_step_run_once_while_workers_are_killed_at_random_moments(
        migration_data, deploy_world, release_manager, settings, tmp_path, capsys):
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(10**9))
    with capsys.disabled():
        print(f"\nworker faults: FAULT_SEED={seed}")
    world = deploy_world
    service_tool_plan(world, tmp_path)
    settings.DEPLOYMENT_LEASE_SECONDS = LEASE_SECONDS  # for the beat job called here; the workers read their env
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": database_url_of(connection.settings_dict), "REDIS_URL": settings.REDIS_URL,
           "DEPLOYMENT_LEASE_SECONDS": str(LEASE_SECONDS)}
    chaos = Chaos(random.Random(seed), env)
    kinds, killed_in = Counter(), 0
    started = time.monotonic()
    try:
        for trial in range(TRIALS):
            kind = ("succeeds", "wave two fails", "succeeds", "two at once")[trial % 4]
            kinds[kind] += 1
            note = f"FAULT_SEED={seed} trial {trial} ({kind})"
            deployments = trial_start(world, kind, trial, release_manager)
            assert [d.status for d in deployments] == ["started", "queued"][:len(deployments)], note
            killed_in += chaos.run(deployments, seed_note=note) > 0
            assert_ended_as_promised(world, kind, deployments, note)
    finally:
        chaos.stop()
        forget_unacked(set(Deployment.objects.values_list("pk", flat=True)))
    assert killed_in >= TRIALS // 2, f"FAULT_SEED={seed}: most kills came after the deployments had ended"
    with capsys.disabled():
        print(f"worker faults: {TRIALS} trials ({', '.join(f'{n} {k}' for k, n in kinds.items())}), {killed_in} "
              f"with a kill; kills: {', '.join(f'{n} of the {k}' for k, n in chaos.kills.items())}; "
              f"{time.monotonic() - started:.0f} s")
