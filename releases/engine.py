"""The deployment engine: runs the steps of a deployment Changeboard runs, one at a time, each held by a lease.

PostgreSQL holds the truth; a task only says "advance deployment 42". `advance` does one step: it claims the next
step with a conditional UPDATE (pending, or running under a lease that ran out, which bumps `attempt`, the fencing
token), runs it while a thread renews the lease, and records the result with an UPDATE that matches only while it
still holds the lease; then, after commit, it sends the task for the next step. A worker killed mid-step delays the
deployment by one lease and never loses it: the beat job sends the task again, the next worker takes the step over.
A step unsafe to repeat (a migration, a rollout the plan says is not repeatable, or its rollback) is then checked,
not run again.

The engine knows nothing of approval. Governance hands it, as plain functions (`Hooks`), the check to make before
each wave, what to do when a deployment ends, and how to send the next task.
"""

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from releases.executors import StepContext, StepResult, executor_for
from releases.executors.command import run_command, step_environment
from releases.health import dependency_health, http_probe, probe_client
from releases.models import (
    ROLLBACK_KINDS,
    CheckPhase,
    DatabaseMigration,
    Deployment,
    DeploymentStatus,
    HealthCheck,
    RolloutStep,
    StepKind,
    StepState,
)
from releases.prometheus import metric_check, query_client
from releases.workflow import RUN_ENDS, run_refusal

log = structlog.get_logger(__name__)

WATCH_INTERVAL_SECONDS = 5.0

# The first line of a watch's output when one of the change's rollback triggers tripped; the halt reason repeats it.
TRIPPED = "Rollback trigger tripped:"


def lease() -> timedelta:
    return timedelta(seconds=settings.DEPLOYMENT_LEASE_SECONDS)


@dataclass(frozen=True)
class Hooks:
    """What governance hands the engine: the reasons not to start the next wave now (none: go ahead), what to do in
    the transaction that ends a deployment, and how to send the task that advances a deployment."""

    wave_check: Callable[[Deployment], list[str]]
    ended: Callable[[Deployment], None]
    send: Callable[[int], None]


# --- the steps of a deployment, from its plan ---------------------------------------------------------------------

def steps_create(deployment: Deployment) -> list[RolloutStep]:
    """The forward steps, per wave: its approval when gated, the checks before it (where the gate is asked again),
    the migration before the first wave, the rollout, the smoke tests, and the watch while it bakes."""
    plan = deployment.plan
    assert plan is not None  # a constraint: a deployment Changeboard runs has its plan
    phases = set(plan.health_checks.values_list("phase", flat=True))
    has_migration = DatabaseMigration.objects.filter(plan=plan).exists()
    steps: list[RolloutStep] = []
    for index, wave in enumerate(plan.waves.order_by("position")):
        kinds = [StepKind.MANUAL_GATE] if wave.manual_gate else []
        kinds.append(StepKind.PRE_CHECK)
        if index == 0 and has_migration:
            kinds.append(StepKind.MIGRATE)
        kinds.append(StepKind.ROLLOUT)
        if CheckPhase.SMOKE in phases:
            kinds.append(StepKind.SMOKE)
        if wave.bake_seconds or CheckPhase.WATCH in phases:
            kinds.append(StepKind.WATCH)
        for kind in kinds:
            unsafe = kind == StepKind.MIGRATE or (kind == StepKind.ROLLOUT and not plan.rollout_repeatable)
            steps.append(_step(deployment, len(steps) + 1, wave.position, wave.name, kind, wave.targets, unsafe))
    return RolloutStep.objects.bulk_create(steps)


def _step(deployment: Deployment, sequence: int, wave_position: int, wave_name: str, kind: str,
          targets: list[str], unsafe: bool) -> RolloutStep:
    return RolloutStep(deployment=deployment, sequence=sequence, wave_position=wave_position, wave_name=wave_name,
                       kind=kind, targets=targets, unsafe_to_repeat=unsafe,
                       idempotency_key=f"{deployment.number}-{sequence:03d}-{kind}")


# --- one step ------------------------------------------------------------------------------------------------------

def advance(deployment_id: int, *, owner: str, hooks: Hooks) -> str:
    """Run the next step of a started deployment, unless another worker holds it; end the deployment when no step
    is left. Safe to call twice: says, in a word or two, what it did."""
    deployment = (Deployment.objects.select_related("plan", "artifact", "previous_artifact", "environment",
                                                    "service").get(pk=deployment_id))
    if deployment.status != DeploymentStatus.STARTED:
        return f"not started ({deployment.status})"
    step = deployment.steps.filter(state__in=(StepState.PENDING, StepState.RUNNING)).order_by("sequence").first()
    if step is None:
        return _end_when_done(deployment, hooks)
    if step.kind == StepKind.MANUAL_GATE:
        _pause(deployment, f"Wave {step.wave_position} ({step.wave_name}) waits for a release manager's approval.")
        return "waiting for approval"
    gate_note = ""
    if step.kind == StepKind.PRE_CHECK:
        reasons = hooks.wave_check(deployment)
        if reasons:
            _pause(deployment, f"Wave {step.wave_position} ({step.wave_name}) did not start: " + " ".join(reasons))
            return "paused by the gate"
        gate_note = f"The gate allows wave {step.wave_position} ({step.wave_name}) now.\n"
        # The dependency circuit breaker: deploying into a broken dependency would only look like a bad build.
        dependencies = dependency_health(deployment.service)
        if dependencies.unhealthy:
            _pause(deployment, f"Wave {step.wave_position} ({step.wave_name}) did not start: a dependency of "
                               f"{deployment.service} is unhealthy: " + " ".join(dependencies.unhealthy))
            return "paused by a dependency"
        if dependencies.healthy:
            gate_note += f"Dependencies healthy: {', '.join(dependencies.healthy)}.\n"
    attempt = _claim(step, owner)
    if attempt is None:
        return "held by another worker"
    started = time.monotonic()
    with _heartbeat(step.pk, attempt):
        try:
            result = _run(step, deployment, taken_over=attempt > 1)
        except Exception as exc:  # a step that breaks fails, and the rollout halts; left running, it would loop
            result = StepResult(False, f"The step broke: {type(exc).__name__}: {exc}")
    outcome = _record(deployment, step, attempt, StepResult(result.ok, gate_note + result.output), hooks)
    log.info("deployment_step", deployment=deployment.number, change=deployment.change_number,
             service=deployment.service.name, environment=deployment.environment.name, wave=step.wave_name,
             wave_position=step.wave_position, step=step.kind, targets=list(step.targets), attempt=attempt,
             result=outcome, duration_ms=round((time.monotonic() - started) * 1000, 1))
    return outcome


def _claim(step: RolloutStep, owner: str) -> int | None:
    """Take the step: pending, or running under a lease that ran out. The attempt it is taken as, or None."""
    now = timezone.now()
    taken = RolloutStep.objects.filter(
        Q(state=StepState.PENDING) | Q(state=StepState.RUNNING, lease_expires_at__lt=now), pk=step.pk,
    ).update(state=StepState.RUNNING, lease_owner=owner[:200], lease_expires_at=now + lease(),
             attempt=F("attempt") + 1, started_at=Coalesce(F("started_at"), now))
    if not taken:
        return None
    return RolloutStep.objects.values_list("attempt", flat=True).get(pk=step.pk)


@contextmanager
def _heartbeat(step_id: int, attempt: int) -> Iterator[None]:
    """Renew the lease every third of it while the step runs, on a connection of the thread's own."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(lease().total_seconds() / 3):
                RolloutStep.objects.filter(pk=step_id, state=StepState.RUNNING, attempt=attempt).update(
                    lease_expires_at=timezone.now() + lease())
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"lease-{step_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _record(deployment: Deployment, step: RolloutStep, attempt: int, result: StepResult, hooks: Hooks) -> str:
    """Record the result if the lease still holds (else another worker's result counts), halt on a failure, and
    send the next step's task once committed."""
    end_state = StepState.SUCCEEDED if result.ok else StepState.FAILED
    with transaction.atomic():
        held = RolloutStep.objects.filter(pk=step.pk, state=StepState.RUNNING, attempt=attempt).update(
            state=end_state, output=_capped(result.output), finished_at=timezone.now(), lease_owner="",
            lease_expires_at=None)
        if not held:
            return "lease lost"
        if not result.ok:
            step.refresh_from_db()
            _halt(deployment, step, hooks)
        transaction.on_commit(lambda: hooks.send(deployment.pk))
    return end_state


def _capped(output: str) -> str:
    limit = RolloutStep.OUTPUT_LIMIT
    return output if len(output) <= limit else output[:limit - 40] + "\n[output cut to the step's limit]"


# --- what each kind of step does ------------------------------------------------------------------------------------

def _context(step: RolloutStep, deployment: Deployment) -> StepContext:
    previous = deployment.previous_artifact
    return StepContext(deployment=deployment.number, environment=deployment.environment.name,
                       artifact_digest=deployment.artifact.digest, previous_digest=previous.digest if previous else "",
                       wave=step.wave_name, targets=tuple(step.targets), idempotency_key=step.idempotency_key)


def _run(step: RolloutStep, deployment: Deployment, *, taken_over: bool) -> StepResult:
    assert deployment.plan is not None
    if step.kind in (StepKind.PRE_CHECK, StepKind.SMOKE):
        phase = CheckPhase.PRE if step.kind == StepKind.PRE_CHECK else CheckPhase.SMOKE
        return _probe_all(step, deployment, phase)
    if step.kind == StepKind.WATCH:
        return _watch(step, deployment)
    if step.kind in (StepKind.MIGRATE, StepKind.ROLLBACK_MIGRATE):
        return _migrate(step, deployment, taken_over=taken_over)
    executor = executor_for(deployment.plan)
    context = _context(step, deployment)
    backward = step.kind == StepKind.ROLLBACK_ROLLOUT
    if taken_over and step.unsafe_to_repeat:
        # A rollback is a rollout of the build that ran before: the check is asked whether that build is in place.
        happened = executor.check(replace(context, artifact_digest=context.previous_digest,
                                          previous_digest=context.artifact_digest) if backward else context)
        what = "rollback" if backward else "rollout"
        if happened is None:
            return StepResult(False, f"The {what} was interrupted and the executor cannot tell whether it happened: "
                                     "it is not run again.")
        if happened:
            return StepResult(True, f"The {what} was interrupted after it happened (the executor's check says so): "
                                    "it is not run again.")
    return executor.backward(context) if backward else executor.forward(context)


@dataclass
class _Round:
    """One round of a phase's checks: each HTTP probe on each target, each metric check once."""

    lines: list[str] = field(default_factory=list)
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_rates: list[tuple[float, str]] = field(default_factory=list)


def _check_round(step: RolloutStep, deployment: Deployment, checks: list[HealthCheck]) -> _Round:
    done = _Round()
    with probe_client() as client, query_client() as prometheus:
        for check in checks:
            if check.kind == HealthCheck.Kind.METRIC:
                ok, value, line = metric_check(check, client=prometheus)
                done.lines.append(line)
                done.failed += not ok
                if value is not None and check.measures == HealthCheck.Measures.ERROR_RATE_PCT:
                    done.error_rates.append((value, check.name))
                continue
            for target in step.targets:
                probe = http_probe(check, target=target, version=deployment.artifact.version,
                                   digest=deployment.artifact.digest, client=client)
                done.lines.append(probe.detail)
                done.failed += not probe.ok
                if probe.latency_ms is not None:
                    done.latencies_ms.append(probe.latency_ms)
    return done


def _probe_all(step: RolloutStep, deployment: Deployment, phase: str) -> StepResult:
    checks = list(HealthCheck.objects.filter(plan=deployment.plan, phase=phase))
    if not checks:
        return StepResult(True, f"No {CheckPhase(phase).label.lower()} checks in the plan.")
    done = _check_round(step, deployment, checks)
    return StepResult(not done.failed, "\n".join(done.lines))


def p99(values: list[float]) -> float:
    """The 99th percentile by nearest rank: with fewer than a hundred probes, the slowest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _tripped(deployment: Deployment, done: _Round, failed: int, latencies_ms: list[float]) -> str:
    """The change's rollback trigger this watch has tripped so far, with the value measured, or ""."""
    if deployment.rollback_error_rate_pct is not None:
        limit = float(deployment.rollback_error_rate_pct)
        for rate, name in done.error_rates:
            if rate > limit:
                return (f"{TRIPPED} error rate {rate:g} % ({name}) is above the change's "
                        f"{deployment.rollback_error_rate_pct} %.")
    if deployment.rollback_latency_p99_ms is not None and latencies_ms:
        measured = p99(latencies_ms)
        if measured > deployment.rollback_latency_p99_ms:
            return (f"{TRIPPED} p99 latency {measured:.0f} ms over {len(latencies_ms)} probes is above the "
                    f"change's {deployment.rollback_latency_p99_ms} ms.")
    most = deployment.rollback_failed_health_checks
    if most is not None and failed >= max(1, most):
        return (f"{TRIPPED} {failed} failed health checks reach the change's "
                f"{deployment.rollback_failed_health_checks}.")
    return ""


def _watch(step: RolloutStep, deployment: Deployment) -> StepResult:
    """Run the watch checks until the wave's bake time is over, evaluating the change's rollback triggers after each
    round: a tripped trigger ends the watch, failed, with what it measured. Without a failed-checks trigger, the
    first failed check ends it; with one, failed checks are counted until they reach it."""
    assert deployment.plan is not None
    bake = deployment.plan.waves.get(position=step.wave_position).bake_seconds
    ends = timezone.now() + timedelta(seconds=bake)
    checks = list(HealthCheck.objects.filter(plan=deployment.plan, phase=CheckPhase.WATCH))
    lines: list[str] = []
    failed, latencies_ms = 0, []
    while True:
        if checks:
            done = _check_round(step, deployment, checks)
            lines.append("\n".join(done.lines))
            failed += done.failed
            latencies_ms += done.latencies_ms
            tripped = _tripped(deployment, done, failed, latencies_ms)
            if tripped:
                return StepResult(False, tripped + "\n" + "\n".join(lines[-20:]))
            if done.failed and deployment.rollback_failed_health_checks is None:
                return StepResult(False, "\n".join(lines[-20:]))
        else:
            lines.append("No checks while the wave bakes in the plan.")
        left = (ends - timezone.now()).total_seconds()
        if left <= 0:
            counted = f" {failed} failed checks tolerated." if failed else ""
            return StepResult(True, f"Baked {bake} s, healthy.{counted}\n" + "\n".join(lines[-20:]))
        threading.Event().wait(min(WATCH_INTERVAL_SECONDS, left))


def _schema_version(migration: DatabaseMigration, env: dict[str, str]) -> str | None:
    if not migration.version_command:
        return None
    run = run_command(migration.version_command, env=env, timeout=migration.timeout_seconds)
    return run.output.strip() if run.ok else None


def _migrate(step: RolloutStep, deployment: Deployment, *, taken_over: bool) -> StepResult:
    migration = DatabaseMigration.objects.get(plan=deployment.plan)
    env = step_environment(_context(step, deployment))
    forward = step.kind == StepKind.MIGRATE
    command, leaves = ((migration.forward, migration.forward_schema_version) if forward
                       else (migration.backward, migration.backward_schema_version))
    if taken_over:
        version = _schema_version(migration, env)
        if version is None:
            return StepResult(False, "The migration was interrupted and its schema version cannot be read: it is not "
                                     "run again.")
        if version == leaves:
            return StepResult(True, f"The schema is at {leaves} already: the interrupted migration happened.")
    if not forward and migration.version_command:
        version = _schema_version(migration, env)
        if version != migration.forward_schema_version:
            return StepResult(False, f"The schema is at {version or 'an unknown version'}, not "
                                     f"{migration.forward_schema_version}: the backward migration is not run.")
    run = run_command(command, env=env, timeout=migration.timeout_seconds)
    return StepResult(run.ok, run.output)


# --- halting, rolling back, ending ---------------------------------------------------------------------------------

def _locked(deployment: Deployment) -> Deployment:
    return (Deployment.objects.select_for_update(of=("self",))
            .select_related("plan", "artifact", "previous_artifact", "environment", "service").get(pk=deployment.pk))


def _halt(deployment: Deployment, failed: RolloutStep, hooks: Hooks) -> None:
    """A step failed: undo what was done (the waves in reverse order, then the migration), or stop for a person."""
    deployment = _locked(deployment)
    if deployment.status not in (DeploymentStatus.STARTED, DeploymentStatus.PAUSED):
        return
    reason = f"Step {failed.sequence} ({failed.get_kind_display().lower()}, wave {failed.wave_name}) failed."
    if failed.output.startswith(TRIPPED):
        reason += " " + failed.output.splitlines()[0]
    if failed.kind in ROLLBACK_KINDS:
        _stop(deployment, reason, hooks)
        return
    if deployment.steps.filter(kind__in=ROLLBACK_KINDS).exists():
        return  # a rollback is under way already (an abort planned it); it goes on
    deployment.halt_reason = reason
    deployment.save(update_fields=["halt_reason"])
    _rollback_or_end(deployment, DeploymentStatus.FAILED, hooks)


def rollback_plan(deployment: Deployment) -> tuple[list[RolloutStep], str]:
    """The steps that undo what the deployment did (its waves' rollouts in reverse order, then the migration), or
    the manual steps, in words, where they cannot be done by Changeboard. Skips the forward steps not yet run."""
    deployment.steps.filter(state=StepState.PENDING).exclude(kind__in=ROLLBACK_KINDS).update(state=StepState.SKIPPED)
    steps = list(deployment.steps.order_by("sequence"))
    touched = (StepState.RUNNING, StepState.SUCCEEDED, StepState.FAILED)
    rolled_out = [s for s in steps if s.kind == StepKind.ROLLOUT and s.state in touched]
    migrated = any(s.kind == StepKind.MIGRATE and s.state == StepState.SUCCEEDED for s in steps)
    migration = DatabaseMigration.objects.filter(plan=deployment.plan).first() if migrated else None
    previous = deployment.previous_artifact
    manual = []
    if rolled_out and previous is None:
        manual.append(f"No earlier build of {deployment.service} ran in {deployment.environment}: take "
                      f"{', '.join(t for s in rolled_out for t in s.targets)} out of service or deploy a fixed build.")
    if migration is not None and not migration.backward:
        manual.append(f"The migration to schema {migration.forward_schema_version} has no backward command: move the "
                      f"schema back by hand.")
        if previous is not None and rolled_out:
            manual.append(f"Then put {', '.join(t for s in reversed(rolled_out) for t in s.targets)} back on "
                          f"{previous.version} ({previous.digest}), wave by wave in that order.")
    if manual:
        return [], "\n".join(f"{n}. {line}" for n, line in enumerate(manual, 1))
    sequence = steps[-1].sequence if steps else 0
    undo = []
    for rollout in reversed(rolled_out):
        sequence += 1
        # Undoing a rollout the plan says is unsafe to repeat is no safer to repeat: it is checked too.
        undo.append(_step(deployment, sequence, rollout.wave_position, rollout.wave_name, StepKind.ROLLBACK_ROLLOUT,
                          rollout.targets, rollout.unsafe_to_repeat))
    if migration is not None:
        sequence += 1
        undo.append(_step(deployment, sequence, 0, "migration", StepKind.ROLLBACK_MIGRATE, [], True))
    return RolloutStep.objects.bulk_create(undo), ""


def _rollback_or_end(deployment: Deployment, nothing_done: str, hooks: Hooks) -> None:
    """Plan the rollback and go on with it; end as `nothing_done` when there is nothing to undo, failed when only a
    person can undo it."""
    undo, manual = rollback_plan(deployment)
    if manual:
        deployment.manual_steps = manual
        deployment.save(update_fields=["manual_steps"])
        _end(deployment, DeploymentStatus.FAILED, hooks)
    elif not undo:
        _end(deployment, nothing_done, hooks)
    elif deployment.status == DeploymentStatus.PAUSED:
        _move(deployment, DeploymentStatus.STARTED)


def _stop(deployment: Deployment, reason: str, hooks: Hooks) -> None:
    """A rollback step failed: nothing more runs; a person finishes the rollback, told what is left."""
    left = list(deployment.steps.filter(state=StepState.PENDING).order_by("sequence"))
    deployment.steps.filter(state=StepState.PENDING).update(state=StepState.SKIPPED)
    lines = [f"{reason} Check what it left and finish it by hand."]
    lines += [f"Then: {s.get_kind_display().lower()} of wave {s.wave_name}"
              + (f" ({', '.join(s.targets)})" if s.targets else "") for s in left]
    deployment.halt_reason = reason
    deployment.manual_steps = "\n".join(f"{n}. {line}" for n, line in enumerate(lines, 1))
    deployment.save(update_fields=["halt_reason", "manual_steps"])
    _end(deployment, DeploymentStatus.FAILED, hooks)


def _end_when_done(deployment: Deployment, hooks: Hooks) -> str:
    with transaction.atomic():
        deployment = _locked(deployment)
        if deployment.status != DeploymentStatus.STARTED or deployment.steps.filter(
                state__in=(StepState.PENDING, StepState.RUNNING)).exists():
            return "not done"
        rolled_back = deployment.steps.filter(kind__in=ROLLBACK_KINDS).exists()
        status = (DeploymentStatus.ABORTED if deployment.aborted_by_id is not None
                  else DeploymentStatus.ROLLED_BACK if rolled_back else DeploymentStatus.SUCCEEDED)
        _end(deployment, status, hooks)
    return status


def _move(deployment: Deployment, status: str) -> None:
    """Move a locked deployment as the lifecycle's table allows; an end also says when."""
    refusal = run_refusal(deployment.status, status)
    if refusal:
        raise ValueError(f"{deployment.number} {refusal}")
    log.info("deployment_status", deployment=deployment.number, change=deployment.change_number,
             moved_from=deployment.status, moved_to=status, reason=deployment.halt_reason or None)
    deployment.status = status
    if status in RUN_ENDS:
        deployment.finished_at = timezone.now()
    deployment.save(update_fields=["status", "finished_at"])


def _end(deployment: Deployment, status: str, hooks: Hooks) -> None:
    _move(deployment, status)
    hooks.ended(deployment)


def _pause(deployment: Deployment, reason: str) -> None:
    """Stop before the next step, saying why; a running step is never interrupted by it."""
    Deployment.objects.filter(pk=deployment.pk, status=DeploymentStatus.STARTED).update(
        status=DeploymentStatus.PAUSED, halt_reason=reason)


# --- what people do to a running deployment (governance checks who may) --------------------------------------------

def deployment_resume(deployment: Deployment, hooks: Hooks) -> Deployment:
    with transaction.atomic():
        deployment = _locked(deployment)
        _move(deployment, DeploymentStatus.STARTED)
        deployment.halt_reason = ""
        deployment.save(update_fields=["halt_reason"])
        transaction.on_commit(lambda: hooks.send(deployment.pk))
    return deployment


def deployment_pause(deployment: Deployment, reason: str) -> Deployment:
    with transaction.atomic():
        deployment = _locked(deployment)
        _move(deployment, DeploymentStatus.PAUSED)
        deployment.halt_reason = reason
        deployment.save(update_fields=["halt_reason"])
    return deployment


def wave_approve(deployment: Deployment, *, approved_by: str, hooks: Hooks) -> RolloutStep:
    """The waiting wave's approval step succeeds, in the approver's name, and the deployment goes on."""
    with transaction.atomic():
        deployment = _locked(deployment)
        step = (deployment.steps.select_for_update().filter(state=StepState.PENDING).order_by("sequence").first())
        if step is None or step.kind != StepKind.MANUAL_GATE:
            raise LookupError(f"{deployment.number} has no wave waiting for approval.")
        now = timezone.now()
        step.state, step.output, step.started_at, step.finished_at = (
            StepState.SUCCEEDED, f"Approved by {approved_by}.", now, now)
        step.save(update_fields=["state", "output", "started_at", "finished_at"])
        if deployment.status == DeploymentStatus.PAUSED:
            _move(deployment, DeploymentStatus.STARTED)
            deployment.halt_reason = ""
            deployment.save(update_fields=["halt_reason"])
        transaction.on_commit(lambda: hooks.send(deployment.pk))
    return step


def deployment_abort(deployment: Deployment, *, aborted_by, reason: str, hooks: Hooks) -> Deployment:
    """Stop: a queued deployment ends at once; a started or paused one rolls back what it did, then ends aborted."""
    with transaction.atomic():
        deployment = _locked(deployment)
        refusal = run_refusal(deployment.status, DeploymentStatus.ABORTED)
        if refusal:
            raise ValueError(f"{deployment.number} {refusal}")
        if deployment.steps.filter(kind__in=ROLLBACK_KINDS).exists():
            raise ValueError(f"{deployment.number} is rolling back already.")
        deployment.aborted_by = aborted_by
        deployment.halt_reason = f"Aborted by {aborted_by}: {reason}"
        deployment.save(update_fields=["aborted_by", "halt_reason"])
        if deployment.status == DeploymentStatus.QUEUED:
            deployment.steps.filter(state=StepState.PENDING).update(state=StepState.SKIPPED)
            _move(deployment, DeploymentStatus.ABORTED)
        else:
            _rollback_or_end(deployment, DeploymentStatus.ABORTED, hooks)
            if deployment.status == DeploymentStatus.STARTED:
                transaction.on_commit(lambda: hooks.send(deployment.pk))
    return deployment
