"""The one decision every pipeline protocol calls: may this artifact go to this environment now?"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.calendar.selectors import freezes_covering, lockdowns_covering
from governance.changes.workflow import EARLY_START
from governance.errors import Conflict, Forbidden, InvalidInput
from governance.models.calendar import Severity
from governance.models.changes import ChangeRequest, ChangeType
from governance.models.changes import ChangeStatus as S
from governance.models.gate import DeploymentCheck, GateDecision
from releases.models import Artifact, Deployment, DeploymentStatus, Promotion, ScanVerdict, SignatureStatus

DEPLOYABLE = (S.APPROVED, S.SCHEDULED, S.IMPLEMENTING)
# An answer holds this long: a pipeline that waits longer asks again.
VALID_FOR = timedelta(minutes=5)


def _reasons(change: ChangeRequest, service: ConfigurationItem, environment: Environment, digest: str,
             artifact: Artifact | None, now: datetime) -> list[dict[str, str]]:
    reasons = []

    def deny(code: str, message: str) -> None:
        reasons.append({"code": code, "message": message})

    if change.status not in DEPLOYABLE:
        deny("change_not_approved", f"{change.number} is {S(change.status).label}, not approved.")
    if not change.affected_cis.filter(pk=service.pk).exists():
        deny("change_not_for_service", f"{change.number} does not cover {service.name}.")
    if change.environment_id != environment.pk:
        deny("change_not_for_environment", f"{change.number} is for {change.environment}, not {environment.name}.")
    if change.held_by_id is not None:
        deny("change_on_hold", f"{change.number} is on hold: {change.held_by}.")
    if change.planned_start is None or change.planned_end is None or not (
            change.planned_start - EARLY_START <= now <= change.planned_end):
        deny("outside_window", f"Now is outside the window of {change.number}.")
    for lockdown in lockdowns_covering([service], environment.pk, now):
        deny("lockdown", f"A lockdown stops the line: {lockdown.reason}.")
    if change.change_type != ChangeType.EMERGENCY:
        for hit in freezes_covering([service], environment.pk, now, now + timedelta(microseconds=1)):
            if hit.freeze.severity == Severity.HARD:
                deny("hard_freeze", f"The hard freeze {hit.freeze.name} is on until {hit.ends:%Y-%m-%d %H:%M} UTC.")
    running = Deployment.objects.filter(service=service, environment=environment,
                                        status=DeploymentStatus.STARTED).first()
    if running is not None:
        deny("environment_locked", f"{running.number} is deploying {service.name} to {environment.name} now.")
    if artifact is None:
        deny("artifact_unknown", f"No artifact {digest} is registered.")
        return reasons
    if artifact.service_id != service.pk:
        deny("artifact_not_for_service", f"{digest} is a build of {artifact.service}, not {service.name}.")
    previous = Environment.objects.filter(position__lt=environment.position).order_by("-position").first()
    if previous is not None and not Promotion.objects.filter(artifact=artifact, environment=previous).exists():
        deny("artifact_not_promoted", f"{artifact} has not passed {previous.name}.")
    if environment.is_production and artifact.signature_status != SignatureStatus.VALID:
        deny("signature_required", f"Production takes signed builds only; {artifact} is "
                                   f"{SignatureStatus(artifact.signature_status).label.lower()}.")
    failed = [scan.tool for scan in artifact.scans.all() if scan.verdict == ScanVerdict.FAIL]
    if failed:
        deny("scan_failed", f"Scans failed: {', '.join(sorted(failed))}.")
    return reasons


def deployment_check(*, actor, change: ChangeRequest, service: ConfigurationItem, environment: Environment,
                     digest: str) -> DeploymentCheck:
    """Answer, with every reason to deny found (not only the first), and record the question and the answer."""
    if not actor.has_perm("governance.add_deploymentcheck"):
        raise Forbidden("Asking the gate is for pipelines.")
    now = timezone.now()
    artifact = Artifact.objects.prefetch_related("scans").filter(digest=digest).first()
    reasons = _reasons(change, service, environment, digest, artifact, now)
    return DeploymentCheck.objects.create(
        change=change, service=service, environment=environment, digest=digest, artifact=artifact,
        decision=GateDecision.DENY if reasons else GateDecision.ALLOW, reasons=reasons, asked_by=actor,
        asked_at=now, valid_until=now + VALID_FOR,
    )


FINISHED = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK)


def deployment_start(*, actor, check: DeploymentCheck) -> Deployment:
    """The pipeline reports that it started what the gate allowed; one deployment at a time per environment."""
    if not actor.has_perm("governance.add_deploymentcheck"):
        raise Forbidden("Reporting deployments is for pipelines.")
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


def deployment_finish(*, actor, deployment: Deployment, status: str) -> Deployment:
    if not actor.has_perm("governance.add_deploymentcheck"):
        raise Forbidden("Reporting deployments is for pipelines.")
    if status not in FINISHED:
        raise InvalidInput("status must be succeeded, failed or rolled_back.", field="status")
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if deployment.status != DeploymentStatus.STARTED:
            raise Conflict(f"{deployment.number} already ended {deployment.status}.", field="status")
        deployment.status, deployment.finished_at = status, timezone.now()
        deployment.save(update_fields=["status", "finished_at"])
    return deployment
