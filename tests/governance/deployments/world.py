"""The world the deployment tests run in: a shop-api service with four targets, each a small HTTP server on loopback
serving the build it runs, a deploy script (the command executor's command) that really changes what a target
serves and writes down what it did, a plan of three waves, two builds and an approved change whose window is open.
"""

import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from governance.deployments.orchestration import HOOKS
from governance.deployments.services import rollout_start
from governance.models import ChangeStatus
from releases.engine import advance
from releases.models import (
    Deployment,
    DeploymentKind,
    DeploymentPlan,
    DeploymentStatus,
    HealthCheck,
    PlanWave,
    Promotion,
    RolloutStep,
)
from tests.factories import make_artifact, make_change, make_ci, make_environment, make_team, make_user

DEPLOY_SCRIPT = textwrap.dedent('''
    """Deploy (forward) or roll back (backward) a wave: each target's state file gets the build it now serves, and
    the journal a line per target, in the order things happened."""
    import os, sys
    mode, state, journal, *targets = sys.argv[1:]
    digest = os.environ["CB_ARTIFACT_DIGEST" if mode == "forward" else "CB_PREVIOUS_DIGEST"]
    with open(journal, "a") as log:
        for target in targets:
            with open(os.path.join(state, target.replace(":", "_")), "w") as served:
                served.write(digest)
            log.write(f"{mode} {os.environ['CB_WAVE']} {target} {digest} {os.environ['CB_IDEMPOTENCY_KEY']}\\n")
''')


class VersionServer:
    """A target: answers /health with the build its state file names, or 500 for a build it is told is broken."""

    def __init__(self, state: Path):
        self.broken: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                served = server.state_file.read_text()
                status = 500 if served in server.broken else 200
                body = served.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.state_file = state / self.target.replace(":", "_")
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serves(self) -> str:
        return self.state_file.read_text()


@dataclass
class World:
    plan: DeploymentPlan
    change: object
    old: object
    new: object
    servers: list[VersionServer]
    journal: Path
    waves: dict[str, list[VersionServer]] = field(default_factory=dict)

    def journal_lines(self) -> list[tuple[str, str, str]]:
        """(forward or backward, wave, digest) per target, in the order the deploy script ran."""
        if not self.journal.exists():
            return []
        return [tuple(line.split()[:2] + line.split()[3:4]) for line in self.journal.read_text().splitlines()]

    def waves_in_journal(self) -> list[tuple[str, str]]:
        """(mode, wave) per run of the deploy script, in order."""
        runs: list[tuple[str, str]] = []
        for mode, wave, _ in self.journal_lines():
            if not runs or runs[-1] != (mode, wave):
                runs.append((mode, wave))
        return runs


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The deployments whose next step the engine sends, collected instead of queued: tests that use it advance the
    deployment themselves, with no worker."""
    collected: list[int] = []
    monkeypatch.setattr("governance.deployments.orchestration.deployment_advance.delay", collected.append)
    return collected


@pytest.fixture
def deploy_world(tmp_path, release_manager):
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "deploy.py"
    script.write_text(DEPLOY_SCRIPT)
    journal = tmp_path / "journal"
    dev, staging = make_environment("dev", 0), make_environment("staging", 1)
    service = make_ci("shop-api", team=make_team("shop"))
    builder = make_user("ci-bot")
    old = make_artifact(service, "1.0.0", created_by=builder)
    new = make_artifact(service, "1.1.0", created_by=builder)
    for artifact in (old, new):
        Promotion.objects.create(artifact=artifact, environment=dev, recorded_by=builder)
    # 1.0.0 runs in staging now, as a pipeline reported it.
    Deployment.objects.create(kind=DeploymentKind.REPORTED, service=service, environment=staging, artifact=old,
                              status=DeploymentStatus.SUCCEEDED, check_id=uuid.uuid4(), reported_by=builder,
                              started_at=datetime.now(UTC) - timedelta(days=1))
    servers = [VersionServer(state) for _ in range(4)]
    for server in servers:
        server.state_file.write_text(old.digest)
        server.thread.start()
    command = [sys.executable, str(script)]
    plan = DeploymentPlan.objects.create(service=service, environment=staging, executor_settings={
        "forward": [*command, "forward", str(state), str(journal), "{targets}"],
        "backward": [*command, "backward", str(state), str(journal), "{targets}"], "timeout_seconds": 30})
    layout = {"canary": servers[:1], "eu-west": servers[1:3], "us-east": servers[3:]}
    for position, (name, members) in enumerate(layout.items(), 1):
        PlanWave.objects.create(plan=plan, position=position, name=name, targets=[s.target for s in members])
    HealthCheck.objects.create(plan=plan, name="health", phase="smoke", url="http://{target}/health",
                               body_contains="{digest}", max_latency_ms=2000)
    now = datetime.now(UTC)
    change = make_change(make_user("rita", "requester"), cis=[service], environment=staging,
                         planned_start=now - timedelta(minutes=10), planned_end=now + timedelta(hours=2),
                         status=ChangeStatus.APPROVED)
    yield World(plan=plan, change=change, old=old, new=new, servers=servers, journal=journal, waves=layout)
    for server in servers:
        server.httpd.shutdown()
        server.httpd.server_close()


def wait_for(what: str, predicate, timeout: float = 60.0):
    """Poll until `predicate()` is true (returning it), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def ended(deployment: Deployment) -> Deployment | None:
    deployment.refresh_from_db()
    return deployment if deployment.status in ("succeeded", "failed", "rolled_back", "aborted") else None


def steps_of(deployment: Deployment) -> list[tuple[str, str, str]]:
    """(wave, kind, state) of each step, in order."""
    return list(RolloutStep.objects.filter(deployment=deployment).order_by("sequence")
                .values_list("wave_name", "kind", "state"))


def start(world, actor) -> Deployment:
    """The world's change deployed by its plan, the new build, started by `actor`."""
    return rollout_start(actor=actor, change=world.change, plan=world.plan, artifact=world.new)


def drive(deployment: Deployment) -> Deployment:
    """Advance step after step in this process, as the chain of tasks would, until the deployment ends or pauses."""
    for _ in range(60):
        advance(deployment.pk, owner="test-worker", hooks=HOOKS)
        deployment.refresh_from_db()
        if deployment.status != DeploymentStatus.STARTED:
            return deployment
    raise AssertionError("the deployment did not end")
