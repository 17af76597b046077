"""Writing a deployment plan: its executor and settings, its waves in order, its health checks and its migration,
saved together in one transaction by the people who edit plans, and each save recorded in the ledger with what it
changed. The page, and any other door, give the plan as plain values; every rule is checked here.

Executor settings are stored, shown on the plan's page and recorded in the ledger in clear, so no secret may be in
them: an executor takes the name of an environment variable holding a token (`token_env`), never the token.
"""

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from cmdb.models import ConfigurationItem, Environment
from governance.audit.ledger import audit_record
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.core.inputs import json_refusal, text_fault
from governance.deployments.permissions import can_edit_plans
from governance.deployments.selectors import PLAN_IN_USE_STATUSES
from releases.executors import settings_errors
from releases.models import (
    LONGEST_STEP_SECONDS,
    CheckPhase,
    DatabaseMigration,
    DeploymentPlan,
    ExecutorKind,
    HealthCheck,
    PlanWave,
)

MAX_WAVES = 50
MAX_TARGETS = 200
MAX_CHECKS = 50
MAX_ARGUMENTS = 100
# The settings as JSON text: far above any executor's, far below what a page or the ledger should carry.
MAX_SETTINGS_CHARS = 20_000

# A key naming a secret, unless it names the environment variable holding it (token_env: "DEPLOY_TOKEN").
SECRET_KEY = re.compile(r"token|passw(or)?d|passphrase|secret|api[_-]?key|credential|private[_-]?key|"
                        r"authorization|bearer|cookie", re.IGNORECASE)
VARIABLE_KEY = re.compile(r"_(env|env_var|variable|var)$", re.IGNORECASE)
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A value that is a secret whatever its key: an authorization header, a key in PEM, a well-known token's shape, a
# password or token in a URL, or a command-line option giving one.
SECRET_VALUE = re.compile(
    r"^\s*(bearer|basic|token)\s+\S"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY"
    r"|\b(ghp|gho|ghs|ghu|github_pat|glpat|xox[abpr])[-_][A-Za-z0-9_-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|://[^/\s:@]+:[^/\s@]+@"  # a password in a URL
    r"|[?&](access_)?(token|password|secret|api[_-]?key|sig)=[^&{\s]"
    r"|^--?[\w-]*(token|passw(or)?d|secret|api[_-]?key)[\w-]*=\S",
    re.IGNORECASE)
SECRET_OPTION = re.compile(r"^--?[\w-]*(token|passw(or)?d|secret|api[_-]?key)[\w-]*$", re.IGNORECASE)


@dataclass(frozen=True)
class WaveInput:
    """A wave as given, in the order the waves run."""

    name: str
    targets: list[str]
    bake_seconds: int = 0
    manual_gate: bool = False


@dataclass(frozen=True)
class CheckInput:
    """A health check as given: an HTTP probe, or a metric check (url is then the Prometheus server)."""

    name: str
    phase: str
    kind: str = HealthCheck.Kind.HTTP
    url: str = ""
    expected_status: int = 200
    body_contains: str = ""
    max_latency_ms: int | None = None
    query: str = ""
    threshold: float | None = None
    fails_when: str = HealthCheck.FailsWhen.ABOVE
    measures: str = HealthCheck.Measures.OTHER


@dataclass(frozen=True)
class MigrationInput:
    """A plan's database migration as given; without `backward`, it cannot be undone."""

    forward: list[str]
    forward_schema_version: str
    backward: list[str] = field(default_factory=list)
    backward_schema_version: str = ""
    version_command: list[str] = field(default_factory=list)
    timeout_seconds: int = 600


@dataclass(frozen=True)
class PlanInput:
    """Everything a plan is, as given (its service and environment are chosen once, when it is made)."""

    executor: str
    executor_settings: Any
    waves: list[WaveInput]
    checks: list[CheckInput] = field(default_factory=list)
    migration: MigrationInput | None = None
    require_rehearsal: bool = False
    rollout_repeatable: bool = True


# --- the rules -------------------------------------------------------------------------------------------------------

class _Errors(list):
    def add(self, field_name: str, message: str, code: str = "invalid") -> None:
        self.append({"code": code, "message": message, "field": field_name})


def _text(errors: _Errors, where: str, value: Any, *, label: str, max_length: int, required: bool = True) -> None:
    if not isinstance(value, str):
        errors.add(where, f"{label} is text.")
    elif required and not value.strip():
        errors.add(where, f"{label} is required.", "required")
    elif len(value) > max_length:
        errors.add(where, f"{label} is at most {max_length} characters ({len(value)} given).")
    elif fault := text_fault(value):
        errors.add(where, f"{label}: {fault.message}", fault.code)


def _whole(errors: _Errors, where: str, value: Any, *, label: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        errors.add(where, f"{label} is a whole number from {low} to {high}.")


def _arguments(errors: _Errors, where: str, value: Any, *, label: str, required: bool) -> None:
    if not isinstance(value, list) or not all(isinstance(argument, str) for argument in value):
        errors.add(where, f"{label} is a list of arguments.")
    elif required and not value:
        errors.add(where, f"{label} needs at least the program to run.", "required")
    elif len(value) > MAX_ARGUMENTS:
        errors.add(where, f"{label} has at most {MAX_ARGUMENTS} arguments.")
    else:
        for argument in value:
            _text(errors, where, argument, label=label, max_length=500, required=False)


def secret_refusals(settings: Any, path: str = "") -> list[str]:
    """Where the settings hold what looks like a secret, each in words; empty when they hold none."""
    found = []
    if isinstance(settings, dict):
        for key, value in settings.items():
            where = f"{path}.{key}" if path else str(key)
            names_variable = VARIABLE_KEY.search(str(key)) and isinstance(value, str) and VARIABLE_NAME.match(value)
            if SECRET_KEY.search(str(key)) and not names_variable:
                found.append(f"{where} looks like a secret. Settings are kept and shown in clear: give the name of "
                             f"the environment variable that holds it instead (e.g. token_env: \"DEPLOY_TOKEN\").")
            else:
                found += secret_refusals(value, where)
    elif isinstance(settings, list):
        for index, value in enumerate(settings):
            where = f"{path}[{index}]"
            option_then_value = (isinstance(value, str) and SECRET_OPTION.match(value) and index + 1 < len(settings))
            if option_then_value:
                found.append(f"{where} gives {value} a value in the settings: a secret is never written into a plan.")
            else:
                found += secret_refusals(value, where)
    elif isinstance(settings, str) and SECRET_VALUE.search(settings):
        found.append(f"{path or 'The settings'} looks like a secret: a secret is never written into a plan.")
    return found


def _executor_errors(errors: _Errors, executor: Any, settings: Any) -> None:
    if executor not in ExecutorKind.values:
        errors.add("executor", f"No executor is called {str(executor)[:40]!r}: use one of "
                               f"{', '.join(ExecutorKind.values)}.")
        return
    if not isinstance(settings, dict):
        errors.add("executor_settings", "The executor's settings are a JSON object.")
        return
    refusal = json_refusal(settings)
    if refusal is not None:
        errors.add("executor_settings", f"{refusal.path or 'The settings'}: {refusal.message}", refusal.code)
        return
    if len(json.dumps(settings)) > MAX_SETTINGS_CHARS:
        errors.add("executor_settings", f"The settings are at most {MAX_SETTINGS_CHARS} characters of JSON.")
        return
    for secret in secret_refusals(settings):
        errors.add("executor_settings", secret, "secret_in_settings")
    for problem in settings_errors(executor, settings):
        errors.add("executor_settings", problem)


def _wave_errors(errors: _Errors, waves: list[WaveInput]) -> None:
    if not waves:
        errors.add("waves", "A plan has at least one wave.", "required")
        return
    if len(waves) > MAX_WAVES:
        errors.add("waves", f"A plan has at most {MAX_WAVES} waves.")
        return
    seen: set[str] = set()
    deployed_by: dict[str, str] = {}
    for index, wave in enumerate(waves):
        where = f"waves[{index}]"
        _text(errors, f"{where}.name", wave.name, label="A wave's name", max_length=100)
        if isinstance(wave.name, str):
            name = wave.name.strip().casefold()
            if name and name in seen:
                errors.add(f"{where}.name", f"Two waves are called {wave.name.strip()!r}: name each once.",
                           "duplicate")
            seen.add(name)
        if not isinstance(wave.targets, list) or not wave.targets:
            errors.add(f"{where}.targets", "A wave names at least one target.", "required")
        elif len(wave.targets) > MAX_TARGETS:
            errors.add(f"{where}.targets", f"A wave has at most {MAX_TARGETS} targets.")
        else:
            for target in wave.targets:
                _text(errors, f"{where}.targets", target, label="A target", max_length=200)
                _target_once(errors, where, wave, target, deployed_by)
        _whole(errors, f"{where}.bake_seconds", wave.bake_seconds, label="The bake time (seconds)", low=0,
               high=LONGEST_STEP_SECONDS)


def _target_once(errors: _Errors, where: str, wave: WaveInput, target: Any, deployed_by: dict[str, str]) -> None:
    """A target is deployed by one wave: in two, the second would deploy it again, and a rollback undo it twice."""
    if not isinstance(target, str) or not target.strip():
        return
    name, key = (wave.name.strip() if isinstance(wave.name, str) else ""), target.strip()
    first = deployed_by.get(key)
    if first is None:
        deployed_by[key] = name
        return
    errors.add(f"{where}.targets", f"{key} is deployed by {'this wave' if first == name else repr(first)} already: a "
                                   "target is in one wave, once.", "duplicate")


def _check_errors(errors: _Errors, checks: list[CheckInput]) -> None:
    if len(checks) > MAX_CHECKS:
        errors.add("checks", f"A plan has at most {MAX_CHECKS} health checks.")
        return
    seen: set[tuple[str, str]] = set()
    for index, check in enumerate(checks):
        where = f"checks[{index}]"
        _text(errors, f"{where}.name", check.name, label="A check's name", max_length=100)
        if (check.phase, check.name) in seen:
            errors.add(f"{where}.name", f"Two checks of one phase are called {check.name!r}.", "duplicate")
        seen.add((check.phase, check.name))
        if check.phase not in CheckPhase.values:
            errors.add(f"{where}.phase", f"A check's phase is one of {', '.join(CheckPhase.values)}.")
        if check.kind not in HealthCheck.Kind.values:
            errors.add(f"{where}.kind", f"A check is one of {', '.join(HealthCheck.Kind.values)}.")
            continue
        _text(errors, f"{where}.url", check.url, label="The URL", max_length=500)
        if isinstance(check.url, str) and check.url.strip() and not re.match(r"^https?://[^\s/]", check.url):
            errors.add(f"{where}.url", "The URL starts with http:// or https:// and names a host"
                                       f"{' (e.g. http://{target}/healthz)' if check.kind == 'http' else ''}.")
        if check.kind == HealthCheck.Kind.HTTP:
            _whole(errors, f"{where}.expected_status", check.expected_status, label="The expected status",
                   low=100, high=599)
            _text(errors, f"{where}.body_contains", check.body_contains, label="The text the body contains",
                  max_length=200, required=False)
            if check.max_latency_ms is not None:
                _whole(errors, f"{where}.max_latency_ms", check.max_latency_ms, label="The latency ceiling (ms)",
                       low=1, high=LONGEST_STEP_SECONDS * 1000)
            if check.measures:
                errors.add(f"{where}.measures", "Only a metric check measures an error rate.")
        else:
            _text(errors, f"{where}.query", check.query, label="A metric check's PromQL query", max_length=5000)
            _threshold_errors(errors, where, check)
        if check.fails_when not in HealthCheck.FailsWhen.values:
            errors.add(f"{where}.fails_when", f"A check fails {' or '.join(HealthCheck.FailsWhen.values)} its "
                                              f"threshold.")


def _threshold_errors(errors: _Errors, where: str, check: CheckInput) -> None:
    threshold = check.threshold
    if threshold is None:
        errors.add(f"{where}.threshold", "A metric check fails past a threshold: give one.", "required")
    elif not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        errors.add(f"{where}.threshold", "The threshold is a finite number.")
    elif check.measures == HealthCheck.Measures.ERROR_RATE_PCT and not 0 <= threshold <= 100:
        errors.add(f"{where}.threshold", "An error rate is a percentage: its threshold lies from 0 to 100.")
    if check.measures not in HealthCheck.Measures.values:
        errors.add(f"{where}.measures", "Say what the query measures: an error rate in per cent, or something else.")
    elif check.measures == HealthCheck.Measures.ERROR_RATE_PCT and check.fails_when != HealthCheck.FailsWhen.ABOVE:
        errors.add(f"{where}.fails_when", "An error rate fails when it is above its threshold.")


def _migration_errors(errors: _Errors, migration: MigrationInput | None) -> None:
    if migration is None:
        return
    _arguments(errors, "migration.forward", migration.forward, label="The forward command", required=True)
    _text(errors, "migration.forward_schema_version", migration.forward_schema_version,
          label="The schema version it leaves", max_length=100)
    _arguments(errors, "migration.backward", migration.backward, label="The backward command", required=False)
    _arguments(errors, "migration.version_command", migration.version_command, label="The version command",
               required=False)
    _whole(errors, "migration.timeout_seconds", migration.timeout_seconds, label="The migration's timeout (seconds)",
           low=1, high=LONGEST_STEP_SECONDS)
    backward, version = migration.backward, migration.backward_schema_version
    _text(errors, "migration.backward_schema_version", version, label="The schema version the backward command "
                                                                      "leaves", max_length=100, required=False)
    if backward and not (isinstance(version, str) and version.strip()):
        errors.add("migration.backward_schema_version", "Say which schema version the backward command leaves.",
                   "required")
    elif not backward and isinstance(version, str) and version.strip():
        errors.add("migration.backward", "A schema version to go back to needs the backward command that does it.",
                   "required")
    elif backward and version == migration.forward_schema_version:
        errors.add("migration.backward_schema_version", "Going back leaves another schema version than going "
                                                        "forward.")
    for secret in secret_refusals(asdict(migration)):
        errors.add("migration.forward", secret, "secret_in_settings")


def plan_refusal(*, actor: ActingUser, plan: PlanInput) -> InvalidInput | Forbidden | None:
    """Why `actor` may not save `plan` as given, with every fault and its field; None when it will do."""
    if not can_edit_plans(actor):
        return Forbidden("Only release managers and administrators edit deployment plans.")
    errors = _Errors()
    _executor_errors(errors, plan.executor, plan.executor_settings)
    _wave_errors(errors, plan.waves)
    _check_errors(errors, plan.checks)
    _migration_errors(errors, plan.migration)
    if not errors:
        return None
    first = errors[0]
    return InvalidInput(first["message"], field=first["field"], code=first["code"], details=list(errors))


# --- the writes ------------------------------------------------------------------------------------------------------

def _waves_of(plan: DeploymentPlan) -> list[WaveInput]:
    return [WaveInput(name=wave.name, targets=list(wave.targets), bake_seconds=wave.bake_seconds,
                      manual_gate=wave.manual_gate) for wave in plan.waves.order_by("position")]


def _checks_of(plan: DeploymentPlan) -> list[CheckInput]:
    return [CheckInput(name=c.name, phase=c.phase, kind=c.kind, url=c.url, expected_status=c.expected_status,
                       body_contains=c.body_contains, max_latency_ms=c.max_latency_ms, query=c.query,
                       threshold=c.threshold, fails_when=c.fails_when, measures=c.measures)
            for c in plan.health_checks.order_by("pk")]


def _migration_of(plan: DeploymentPlan) -> MigrationInput | None:
    migration = DatabaseMigration.objects.filter(plan=plan).first()
    if migration is None:
        return None
    return MigrationInput(forward=migration.forward, forward_schema_version=migration.forward_schema_version,
                          backward=migration.backward, backward_schema_version=migration.backward_schema_version,
                          version_command=migration.version_command, timeout_seconds=migration.timeout_seconds)


def plan_as_input(plan: DeploymentPlan) -> PlanInput:
    """A saved plan as the values that would save it again: what the editor starts from."""
    return PlanInput(executor=plan.executor, executor_settings=plan.executor_settings, waves=_waves_of(plan),
                     checks=_checks_of(plan), migration=_migration_of(plan),
                     require_rehearsal=plan.require_rehearsal, rollout_repeatable=plan.rollout_repeatable)


def _normalised(plan: PlanInput) -> PlanInput:
    """Names and targets as they are kept: without the spaces around them."""
    waves = [WaveInput(name=wave.name.strip(), targets=[target.strip() for target in wave.targets],
                       bake_seconds=wave.bake_seconds, manual_gate=bool(wave.manual_gate)) for wave in plan.waves]
    checks = [CheckInput(**{**asdict(check), "name": check.name.strip(), "url": check.url.strip()})
              for check in plan.checks]
    migration = plan.migration
    if migration is not None:
        migration = MigrationInput(**{**asdict(migration),
                                      "forward_schema_version": migration.forward_schema_version.strip(),
                                      "backward_schema_version": migration.backward_schema_version.strip()})
    return PlanInput(**{**asdict(plan), "waves": waves, "checks": checks, "migration": migration})


def _what_changed(before: PlanInput | None, after: PlanInput) -> dict:
    """{part: {"before", "after"}} for each part of the plan the save changed, as the ledger shows row changes."""
    old = asdict(before) if before is not None else {}
    return {name: {"before": old.get(name), "after": value} for name, value in asdict(after).items()
            if old.get(name) != value}


# What a deployment's steps were laid out from when it started, and what its rollback goes back through (the engine
# reads them as it goes): while a deployment runs by the plan, or waits to, they stay. Its checks, asked afresh at
# each step, may change (a flapping probe fixed while it is paused), and so may the rehearsal its next start needs.
HELD_WHILE_IN_USE = {
    "waves": ("waves", "the steps were laid out from them"),
    "migration": ("migration", "the steps were laid out from it, and a rollback runs its backward command"),
    "executor": ("executor", "the waves are deployed and rolled back through it"),
    "executor_settings": ("executor settings", "the waves are deployed and rolled back through them"),
    "rollout_repeatable": ("repeatable rollout", "the steps were laid out by it"),
}


def _in_use_refusal(plan: DeploymentPlan, changed: dict) -> Conflict | None:
    held = [part for part in HELD_WHILE_IN_USE if part in changed]
    if not held:
        return None
    running = list(plan.deployments.filter(status__in=PLAN_IN_USE_STATUSES).order_by("pk")
                   .values_list("number", flat=True))
    if not running:
        return None
    who = f"{', '.join(running)} {'runs' if len(running) == 1 else 'run'} by this plan (queued, started or paused)"
    until = "it ends" if len(running) == 1 else "they end"
    details = [{"code": "plan_in_use", "field": part,
                "message": f"{who}: the plan's {HELD_WHILE_IN_USE[part][0]} cannot change until {until}, since "
                           f"{HELD_WHILE_IN_USE[part][1]}."}
               for part in held]
    return Conflict(details[0]["message"], field=details[0]["field"], code="plan_in_use", details=details)


def _write_parts(plan: DeploymentPlan, given: PlanInput, changed: dict) -> None:
    plan.executor, plan.executor_settings = given.executor, given.executor_settings
    plan.require_rehearsal, plan.rollout_repeatable = given.require_rehearsal, given.rollout_repeatable
    plan.save()
    # Each part is written again only when it changed, so the ledger's row events say what the save did.
    if "waves" in changed:
        plan.waves.all().delete()
        PlanWave.objects.bulk_create(PlanWave(plan=plan, position=position, **asdict(wave))
                                     for position, wave in enumerate(given.waves, start=1))
    if "checks" in changed:
        plan.health_checks.all().delete()
        HealthCheck.objects.bulk_create(HealthCheck(plan=plan, **asdict(check)) for check in given.checks)
    if "migration" in changed:
        DatabaseMigration.objects.filter(plan=plan).delete()
        if given.migration is not None:
            DatabaseMigration.objects.create(plan=plan, **asdict(given.migration))


def deployment_plan_create(*, actor: ActingUser, service: ConfigurationItem, environment: Environment,
                           plan: PlanInput) -> DeploymentPlan:
    """A new plan for deploying `service` to `environment`; one plan per service and environment."""
    refusal = plan_refusal(actor=actor, plan=plan)
    if refusal is not None:
        raise refusal
    given = _normalised(plan)
    taken = InvalidInput(f"{service.name} already has a plan for {environment.name}: edit that one.",
                         field="service", code="plan_exists")
    if DeploymentPlan.objects.filter(service=service, environment=environment).exists():
        raise taken
    changed = _what_changed(None, given)
    try:
        with transaction.atomic():
            saved = DeploymentPlan.objects.create(service=service, environment=environment)
            _write_parts(saved, given, changed)
            audit_record("deployment_plan_created", obj=saved, changes=changed,
                         context={"service": service.name, "environment": environment.name})
    except IntegrityError:  # the same plan made at the same moment (a double submit)
        raise taken from None
    return saved


def deployment_plan_update(*, actor: ActingUser, plan: DeploymentPlan, given: PlanInput) -> DeploymentPlan:
    """Save `given` over `plan`. While a deployment runs by it (or waits to), what its steps were laid out from and
    its rollback goes back through stays as it is (HELD_WHILE_IN_USE)."""
    refusal = plan_refusal(actor=actor, plan=given)
    if refusal is not None:
        raise refusal
    given = _normalised(given)
    with transaction.atomic():
        # A start locks the plan too (rollout_start), so no deployment begins between the check below and the save.
        plan = DeploymentPlan.objects.select_for_update().select_related("service", "environment").get(pk=plan.pk)
        changed = _what_changed(plan_as_input(plan), given)
        held = _in_use_refusal(plan, changed)
        if held is not None:
            raise held
        if changed:
            _write_parts(plan, given, changed)
            audit_record("deployment_plan_updated", obj=plan, changes=changed,
                         context={"service": plan.service.name, "environment": plan.environment.name})
    return plan
