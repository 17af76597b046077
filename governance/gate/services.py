"""The one decision every pipeline protocol calls: may this artifact go to this environment now?"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.calendar.selectors import freezes_covering, lockdowns_covering
from governance.changes.workflow import EARLY_START
from governance.errors import Conflict, Forbidden, InvalidInput
from governance.models import ApiToken
from governance.models.calendar import Severity
from governance.models.changes import ChangeRequest, ChangeType
from governance.models.changes import ChangeStatus as S
from governance.models.gate import DeploymentCheck, GateDecision
from governance.services import require_token_scope
from releases.models import (
    Artifact,
    Deployment,
    DeploymentStatus,
    GatePolicy,
    ScanResult,
    ScanVerdict,
    SignatureStatus,
)

DEPLOYABLE = (S.APPROVED, S.SCHEDULED, S.IMPLEMENTING)
# An answer holds this long: a pipeline that waits longer asks again.
VALID_FOR = timedelta(minutes=5)


@dataclass(frozen=True)
class Question:
    """What a pipeline asks; `change` is None when the protocol could not name one (the answer is then deny)."""

    change: ChangeRequest | None
    service: ConfigurationItem
    environment: Environment
    digest: str


class Reasons(list):
    def deny(self, code: str, message: str) -> None:
        self.append({"code": code, "message": message})


# --- the reasons to deny ---------------------------------------------------------------------------------------

def _change_reasons(q: Question, now: datetime, reasons: Reasons) -> None:
    change = q.change
    if change is None:
        reasons.deny("change_missing", f"No approved change covers {q.service.name} in {q.environment.name} now.")
        return
    if change.status not in DEPLOYABLE:
        reasons.deny("change_not_approved", f"{change.number} is {S(change.status).label}, not approved.")
    if not change.affected_cis.filter(pk=q.service.pk).exists():
        reasons.deny("change_not_for_service", f"{change.number} does not cover {q.service.name}.")
    if change.environment_id != q.environment.pk:
        reasons.deny("change_not_for_environment",
                     f"{change.number} is for {change.environment}, not {q.environment.name}.")
    if change.held_by_id is not None:
        reasons.deny("change_on_hold", f"{change.number} is on hold: {change.held_by}.")
    if change.planned_start is None or change.planned_end is None or not (
            change.planned_start - EARLY_START <= now <= change.planned_end):
        reasons.deny("outside_window", f"Now is outside the window of {change.number}.")
    if change.pinned_digests and q.digest not in change.pinned_digests:
        reasons.deny("artifact_not_pinned", f"{change.number} was approved for other builds only: "
                                            f"{', '.join(change.pinned_digests)}.")


def _calendar_reasons(q: Question, now: datetime, reasons: Reasons) -> None:
    for lockdown in lockdowns_covering([q.service], q.environment.pk, now):
        reasons.deny("lockdown", f"A lockdown stops the line: {lockdown.reason}.")
    if q.change is not None and q.change.change_type == ChangeType.EMERGENCY:
        return  # an approved emergency change goes through a freeze; only a lockdown stops it
    for hit in freezes_covering([q.service], q.environment.pk, now, now + timedelta(microseconds=1)):
        if hit.freeze.severity == Severity.HARD:
            reasons.deny("hard_freeze", f"The hard freeze {hit.freeze.name} is on until {hit.ends:%Y-%m-%d %H:%M} UTC.")


def _environment_reasons(q: Question, artifact: Artifact | None, reasons: Reasons) -> None:
    """What runs there now: a deployment in progress holds the environment, and the live build sets the floor."""
    latest = {d.status: d for d in Deployment.objects.filter(
        service=q.service, environment=q.environment, status__in=(DeploymentStatus.STARTED, DeploymentStatus.SUCCEEDED),
    ).select_related("artifact").order_by("status", "-started_at").distinct("status")}
    running = latest.get(DeploymentStatus.STARTED)
    if running is not None:
        reasons.deny("environment_locked",
                     f"{running.number} is deploying {q.service.name} to {q.environment.name} now.")
    live = latest.get(DeploymentStatus.SUCCEEDED)
    rollback = q.change is not None and q.change.rolls_back
    if (artifact is not None and live is not None and not rollback
            and artifact.created_at < live.artifact.created_at):
        reasons.deny("out_of_order", f"{artifact.version} is older than {live.artifact.version}, which runs in "
                                     f"{q.environment.name}; only a rollback change may go back.")


def _artifact_reasons(q: Question, artifact: Artifact | None, policy: GatePolicy, reasons: Reasons) -> None:
    if artifact is None:
        reasons.deny("artifact_unknown", f"No artifact {q.digest} is registered.")
        return
    if artifact.service_id != q.service.pk:
        reasons.deny("artifact_not_for_service", f"{q.digest} is a build of {artifact.service}, not {q.service.name}.")
    previous = Environment.objects.filter(position__lt=q.environment.position).order_by("-position").first()
    if previous is not None and previous.pk not in {p.environment_id for p in artifact.promotions.all()}:
        reasons.deny("artifact_not_promoted", f"{artifact} has not passed {previous.name}.")
    if policy.require_signature and artifact.signature_status != SignatureStatus.VALID:
        reasons.deny("signature_required", f"{q.environment.name} takes signed builds only; {artifact} is "
                                           f"{SignatureStatus(artifact.signature_status).label.lower()}.")
    _scan_reasons(artifact, policy, reasons)


def _scan_reasons(artifact: Artifact, policy: GatePolicy, reasons: Reasons) -> None:
    scans = list(artifact.scans.all())
    failed = sorted({s.tool for s in scans if s.verdict == ScanVerdict.FAIL})
    if policy.block_failed_scans and failed:
        reasons.deny("scan_failed", f"Scans failed: {', '.join(failed)}.")
    passed = {s.kind for s in scans if s.verdict != ScanVerdict.FAIL}
    missing = [ScanResult.Kind(kind).label for kind in policy.required_scans if kind not in passed]
    if missing:
        reasons.deny("scan_missing", f"{policy.environment} needs passed scans: {', '.join(missing)}.")
    for severity, ceiling in (("critical", policy.max_critical), ("high", policy.max_high)):
        found = sum(getattr(s, severity) for s in scans)
        if ceiling is not None and found > ceiling:
            reasons.deny("scan_findings", f"{found} {severity} findings; {policy.environment} allows {ceiling}.")


def gate_reasons(q: Question, *, now: datetime) -> tuple[Artifact | None, Reasons]:
    """Every reason to deny, not only the first."""
    artifact = Artifact.objects.select_related("service").prefetch_related("scans", "promotions").filter(
        digest=q.digest).first()
    reasons = Reasons()
    _change_reasons(q, now, reasons)
    _calendar_reasons(q, now, reasons)
    _environment_reasons(q, artifact, reasons)
    _artifact_reasons(q, artifact, GatePolicy.for_environment(q.environment), reasons)
    return artifact, reasons


def deployment_check(*, actor, token: ApiToken | None, question: Question) -> DeploymentCheck:
    """Answer, with every reason found, and record the question and the answer in the ledger."""
    if not actor.has_perm("governance.add_deploymentcheck"):
        raise Forbidden("Asking the gate is for pipelines.")
    require_token_scope(token, service=question.service, environment=question.environment)
    now = timezone.now()
    artifact, reasons = gate_reasons(question, now=now)
    return DeploymentCheck.objects.create(
        change=question.change, service=question.service, environment=question.environment,
        digest=question.digest, artifact=artifact, decision=GateDecision.DENY if reasons else GateDecision.ALLOW,
        reasons=list(reasons), asked_by=actor, asked_at=now, valid_until=now + VALID_FOR,
    )


def change_for_deployment(service: ConfigurationItem, environment: Environment, at: datetime,
                          digest: str = "") -> ChangeRequest | None:
    """For protocols that name no change: the approved change covering this service and environment now,
    preferring one pinned to this build."""
    candidates = ChangeRequest.objects.filter(
        status__in=DEPLOYABLE, environment=environment, affected_cis=service, held_by__isnull=True,
        planned_start__lte=at + EARLY_START, planned_end__gte=at,
    ).order_by("planned_start")
    pinned = candidates.filter(pinned_digests__contains=[digest]).first() if digest else None
    return pinned or candidates.filter(pinned_digests=[]).first()


# --- reporting back --------------------------------------------------------------------------------------------

FINISHED = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK)


def deployment_start(*, actor, token: ApiToken | None, check: DeploymentCheck) -> Deployment:
    """The pipeline reports that it started what the gate allowed; one deployment at a time per environment."""
    if not actor.has_perm("governance.add_deploymentcheck"):
        raise Forbidden("Reporting deployments is for pipelines.")
    require_token_scope(token, service=check.service, environment=check.environment)
    if check.decision != GateDecision.ALLOW:
        raise Conflict("The gate denied this check: nothing may be deployed under it.", field="check_id",
                       code="check_denied")
    if check.valid_until < timezone.now():
        raise Conflict("This check has expired: ask the gate again.", field="check_id", code="check_expired")
    try:
        with transaction.atomic():
            return Deployment.objects.create(
                service=check.service, environment=check.environment, artifact=check.artifact,
                change_number=check.change.number if check.change else "", check_id=check.pk, reported_by=actor)
    except IntegrityError:
        raise Conflict("Another deployment holds this environment, or this check was already used.",
                       field="check_id", code="environment_locked") from None


def deployment_finish(*, actor, token: ApiToken | None, deployment: Deployment, status: str) -> Deployment:
    if not actor.has_perm("governance.add_deploymentcheck"):
        raise Forbidden("Reporting deployments is for pipelines.")
    require_token_scope(token, service=deployment.service, environment=deployment.environment)
    if status not in FINISHED:
        raise InvalidInput("status must be succeeded, failed or rolled_back.", field="status")
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if deployment.status != DeploymentStatus.STARTED:
            raise Conflict(f"{deployment.number} already ended {deployment.status}.", field="status")
        deployment.status, deployment.finished_at = status, timezone.now()
        deployment.save(update_fields=["status", "finished_at"])
    return deployment
