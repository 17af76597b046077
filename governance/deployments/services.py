"""Every write to a deployment Changeboard runs: start it, pause, resume, abort it, approve its next wave.

A start is allowed by the gate's own decision (`governance.gate.services.gate_decision`, the code every pipeline's
question goes through, not a copy): an approved change covering the service and environment, inside its window,
outside hard freezes and lockdowns, a build fit for the environment. The plan may ask more: that the build's
rollback was rehearsed before production. A refused start is recorded in the ledger and writes nothing else.
"""

from django.db import transaction
from django.utils import timezone

from governance.audit.ledger import audit_record
from governance.changes.permissions import is_release_manager
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, DomainError, Forbidden, InvalidInput
from governance.deployments.orchestration import HOOKS, QUEUED_INSTEAD, begin
from governance.gate.services import Question, gate_decision
from governance.models.changes import ChangeRequest
from releases import engine
from releases.executors import settings_errors
from releases.models import Artifact, Deployment, DeploymentKind, DeploymentPlan, DeploymentStatus, RolloutStep
from releases.selectors import rollback_rehearsed

# Which input each of the gate's reasons is about, for the error's field.
# The longest reason a pause or an abort keeps.
MAX_REASON = 1000

REASON_FIELDS = {
    "artifact_unknown": "artifact", "artifact_not_for_service": "artifact", "artifact_not_promoted": "artifact",
    "signature_required": "artifact", "scan_failed": "artifact", "scan_missing": "artifact",
    "scan_findings": "artifact", "out_of_order": "artifact", "artifact_not_pinned": "artifact",
    "rehearsal_missing": "plan", "plan_invalid": "plan",
}


def start_refusals(*, change: ChangeRequest, plan: DeploymentPlan, artifact: Artifact) -> list[dict]:
    """Every reason not to start `artifact` by `plan` under `change` now, each with its code, message and field."""
    question = Question(change=change.number, service=plan.service.name, environment=plan.environment.name,
                        digest=artifact.digest)
    reasons = [reason for reason in gate_decision(question, now=timezone.now())
               if reason["code"] not in QUEUED_INSTEAD]
    reasons += [{"code": "plan_invalid", "message": f"{plan}: {error}"}
                for error in settings_errors(plan.executor, plan.executor_settings)]
    if not plan.waves.exists():
        reasons.append({"code": "plan_invalid", "message": f"{plan} has no waves."})
    if plan.require_rehearsal and not rollback_rehearsed(artifact):
        reasons.append({"code": "rehearsal_missing",
                        "message": f"{plan} requires a rehearsed rollback: {artifact} was never rolled back in a "
                                   f"pre-production environment."})
    return [{**reason, "field": REASON_FIELDS.get(reason["code"], "change")} for reason in reasons]


def _refused(refusal: DomainError, *, change: ChangeRequest, plan: DeploymentPlan, artifact: Artifact) -> DomainError:
    """Record the refused start in the ledger (in its own transaction: the refusal rolls nothing of it back)."""
    audit_record("deployment_refused", obj=change, context={
        "plan": plan.pk, "service": plan.service.name, "environment": plan.environment.name,
        "artifact": artifact.digest, "reasons": refusal.as_errors()})
    return refusal


def rollout_start(*, actor: ActingUser, change: ChangeRequest, plan: DeploymentPlan,
                  artifact: Artifact) -> Deployment:
    """Start deploying `artifact` by `plan` under `change`; queued if another deployment holds the service in the
    environment, started when it ends. Only release managers start deployments."""
    if not is_release_manager(actor):
        raise _refused(Forbidden("Only a release manager starts a deployment."), change=change, plan=plan,
                       artifact=artifact)
    reasons = start_refusals(change=change, plan=plan, artifact=artifact)
    if reasons:
        first = reasons[0]
        raise _refused(Conflict(first["message"], field=first["field"], code=first["code"], details=reasons),
                       change=change, plan=plan, artifact=artifact)
    with transaction.atomic():
        # Starts for one plan take turns here, so of two at once exactly one takes the environment; the constraint
        # deployment_holds_environment backs it against any other writer.
        plan = DeploymentPlan.objects.select_for_update().select_related("service", "environment").get(pk=plan.pk)
        deployment = Deployment.objects.create(
            kind=DeploymentKind.RUN, plan=plan, service=plan.service, environment=plan.environment,
            artifact=artifact, change_number=change.number, status=DeploymentStatus.QUEUED, reported_by=actor,
            # The change's rollback triggers go with the deployment as plain data: the engine evaluates them.
            rollback_error_rate_pct=change.rollback_error_rate_pct,
            rollback_latency_p99_ms=change.rollback_latency_p99_ms,
            rollback_failed_health_checks=change.rollback_failed_health_checks)
        deployment.refresh_from_db(fields=["number"])
        engine.steps_create(deployment)
        begin(deployment)
        deployment.refresh_from_db()
    return deployment


def _run_by_changeboard(actor: ActingUser, deployment: Deployment, what: str) -> None:
    if not is_release_manager(actor):
        raise Forbidden(f"Only a release manager may {what} a deployment.")
    if deployment.kind != DeploymentKind.RUN:
        raise Conflict(f"{deployment.number} is run by a pipeline: Changeboard cannot {what} it.", field="deployment")


def _reason(reason: str, *, required: bool) -> str:
    """A pause's or an abort's reason as it is kept: words, at most MAX_REASON characters."""
    reason = (reason or "").strip()
    if (required and not reason) or len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(f"Say why{' it is aborted' if required else ''}, in at most {MAX_REASON} characters.",
                           field="reason")
    return reason


def deployment_pause(*, actor: ActingUser, deployment: Deployment, reason: str = "") -> Deployment:
    """Stop before the next step; the step running now ends first."""
    _run_by_changeboard(actor, deployment, "pause")
    reason = _reason(reason, required=False)
    try:
        return engine.deployment_pause(deployment, reason or f"Paused by {actor.get_username()}.")
    except ValueError as exc:
        raise Conflict(str(exc), field="deployment") from None


def deployment_resume(*, actor: ActingUser, deployment: Deployment) -> Deployment:
    """Go on from where it paused; the gate is asked again before the next wave."""
    _run_by_changeboard(actor, deployment, "resume")
    try:
        return engine.deployment_resume(deployment, HOOKS)
    except ValueError as exc:
        raise Conflict(str(exc), field="deployment") from None


def deployment_abort(*, actor: ActingUser, deployment: Deployment, reason: str) -> Deployment:
    """Stop for good, saying why: undo the waves done, in reverse order, and end aborted (a queued one ends at
    once). The reason is kept on the deployment, and so in the ledger."""
    _run_by_changeboard(actor, deployment, "abort")
    reason = _reason(reason, required=True)
    try:
        return engine.deployment_abort(deployment, aborted_by=actor, reason=reason, hooks=HOOKS)
    except ValueError as exc:
        raise Conflict(str(exc), field="deployment") from None


def deployment_wave_approve(*, actor: ActingUser, deployment: Deployment) -> RolloutStep:
    """Let the wave that waits at its manual gate run."""
    _run_by_changeboard(actor, deployment, "approve the next wave of")
    try:
        return engine.wave_approve(deployment, approved_by=actor.get_username(), hooks=HOOKS)
    except LookupError as exc:
        raise InvalidInput(str(exc), field="deployment") from None
