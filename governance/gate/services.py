"""The one decision every pipeline protocol calls: may this artifact go to this environment now?"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.audit.ledger import audit_record
from governance.calendar.verdict import freeze_stops
from governance.changes.services import (
    CHANGE_AFTER_DEPLOYMENT,
    change_request_deployment_ended,
    change_request_deployment_started,
)
from governance.changes.workflow import Window, window_at, window_open_q
from governance.core.actors import ActingUser
from governance.core.credentials import require_scope
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.gate.facts import KnownFacts, gate_facts
from governance.gate.permissions import can_end_deployment, can_report_deployments
from governance.models import ApiToken
from governance.models.calendar import Lockdown
from governance.models.changes import APPROVED_STATES, ChangeRequest
from governance.models.changes import ChangeStatus as S
from governance.models.gate import DeploymentCheck, GateDecision
from releases.models import (
    Deployment,
    DeploymentStatus,
    GatePolicy,
    ScanVerdict,
    SignatureStatus,
    scan_kind_labels,
)
from releases.selectors import deployment_of_check
from releases.services import deployment_end, deployment_record
from releases.workflow import FINISHED

# An answer holds this long: a pipeline that waits longer asks again.
VALID_FOR = timedelta(minutes=5)


@dataclass(frozen=True)
class Question:
    """What a pipeline asks, by name; `change` is empty when the protocol named none (the answer is then deny)."""

    change: str
    service: str
    environment: str
    digest: str


class Reasons(list):
    def deny(self, code: str, message: str) -> None:
        self.append({"code": code, "message": message})


# --- the reasons to deny, from the facts ------------------------------------------------------------------------

def _change_reasons(facts: KnownFacts, q: Question, now: datetime, reasons: Reasons) -> None:
    change, service, environment = facts.change, facts.service["name"], facts.environment
    if change is None:
        reasons.deny("change_missing", f"No approved change covers {service} in {environment['name']} now.")
        return
    number = change["number"]
    if change["status"] not in APPROVED_STATES:
        reasons.deny("change_not_approved", f"{number} is {S(change['status']).label}, not approved.")
    if not change["covers_service"]:
        reasons.deny("change_not_for_service", f"{number} does not cover {service}.")
    if change["environment_id"] != environment["id"]:
        reasons.deny("change_not_for_environment",
                     f"{number} is for {change['environment']}, not {environment['name']}.")
    if change["held_by"] is not None:
        reasons.deny("change_on_hold", f"{number} is on hold: {change['held_by']}.")
    if window_at(change["planned_start"], change["planned_end"], now) != Window.OPEN:
        reasons.deny("outside_window", f"Now is outside the window of {number}.")
    if change["pinned_digests"] and q.digest not in change["pinned_digests"]:
        reasons.deny("artifact_not_pinned",
                     f"{number} was approved for other builds only: {', '.join(change['pinned_digests'])}.")


def _calendar_reasons(facts: KnownFacts, reasons: Reasons) -> None:
    for lockdown in facts.lockdowns:
        reasons.deny("lockdown", f"A lockdown stops the line: {lockdown}.")
    change_type = facts.change["change_type"] if facts.change is not None else None
    for hit in facts.freezes:
        if freeze_stops(hit["severity"], change_type):
            reasons.deny("hard_freeze", f"The hard freeze {hit['name']} is on until {hit['ends']:%Y-%m-%d %H:%M} UTC.")


def _environment_reasons(facts: KnownFacts, reasons: Reasons) -> None:
    """What runs there now: a deployment in progress holds the environment, and the live build sets the floor."""
    service, environment, artifact, live = facts.service["name"], facts.environment["name"], facts.artifact, facts.live
    if facts.running is not None:
        reasons.deny("environment_locked", f"{facts.running} is deploying {service} to {environment} now.")
    rollback = facts.change is not None and facts.change["rolls_back"]
    if artifact is not None and live is not None and not rollback and artifact["created_at"] < live["created_at"]:
        reasons.deny("out_of_order", f"{artifact['version']} is older than {live['version']}, which runs in "
                                     f"{environment}; only a rollback change may go back.")


def _artifact_reasons(facts: KnownFacts, q: Question, policy: GatePolicy, reasons: Reasons) -> None:
    artifact, service = facts.artifact, facts.service
    if artifact is None:
        reasons.deny("artifact_unknown", f"No artifact {q.digest} is registered.")
        return
    label = f"{artifact['service']} {artifact['version']}"
    if artifact["service_id"] != service["id"]:
        reasons.deny("artifact_not_for_service", f"{q.digest} is a build of {artifact['service']}, "
                                                 f"not {service['name']}.")
    previous = facts.environment["previous"]
    if previous is not None and not artifact["passed_previous"]:
        reasons.deny("artifact_not_promoted", f"{label} has not passed {previous['name']}.")
    if policy.require_signature and artifact["signature_status"] != SignatureStatus.VALID:
        reasons.deny("signature_required", f"{facts.environment['name']} takes signed builds only; {label} is "
                                           f"{SignatureStatus(artifact['signature_status']).label.lower()}.")
    _scan_reasons(artifact["scans"], policy, facts.environment["name"], reasons)


def _scan_reasons(scans: list[dict], policy: GatePolicy, environment: str, reasons: Reasons) -> None:
    failed = sorted({s["tool"] for s in scans if s["verdict"] == ScanVerdict.FAIL})
    if policy.block_failed_scans and failed:
        reasons.deny("scan_failed", f"Scans failed: {', '.join(failed)}.")
    passed = {s["kind"] for s in scans if s["verdict"] != ScanVerdict.FAIL}
    missing = scan_kind_labels(kind for kind in policy.required_scans if kind not in passed)
    if missing:
        reasons.deny("scan_missing", f"{environment} needs passed scans: {', '.join(missing)}.")
    for severity, ceiling in (("critical", policy.max_critical), ("high", policy.max_high)):
        found = sum(s[severity] for s in scans)
        if ceiling is not None and found > ceiling:
            reasons.deny("scan_findings", f"{found} {severity} findings; {environment} allows {ceiling}.")


def gate_reasons(facts: KnownFacts, q: Question, *, now: datetime) -> Reasons:
    """Every reason to deny, not only the first."""
    environment = facts.environment
    stand_in = Environment(id=environment["id"], name=environment["name"], is_production=environment["is_production"])
    policy = (GatePolicy(environment=stand_in, **environment["policy"]) if environment["policy"]
              else GatePolicy.default(stand_in))
    reasons = Reasons()
    _change_reasons(facts, q, now, reasons)
    _calendar_reasons(facts, reasons)
    _environment_reasons(facts, reasons)
    _artifact_reasons(facts, q, policy, reasons)
    return reasons


def _known_facts(question: Question, *, user_id: int | None, token_id: int | None, now: datetime) -> KnownFacts:
    """The facts of a question whose every name is known."""
    facts = gate_facts(change=question.change, service=question.service, environment=question.environment,
                       digest=question.digest, user_id=user_id, token_id=token_id, at=now)
    for field, part, given in (("service", facts.service, question.service),
                               ("environment", facts.environment, question.environment),
                               ("change", facts.change if question.change else True, question.change)):
        if part is None:
            raise InvalidInput(f"No {field} is named {given!r}.", field=field, code="does_not_exist")
    return KnownFacts(**vars(facts))  # both names were found just above


def gate_decision(question: Question, *, now: datetime) -> Reasons:
    """Every reason the gate has to deny `question` at `now` (none: it allows), when Changeboard asks itself, with no
    pipeline and no token: the deployments it runs ask before they start and before each wave."""
    return gate_reasons(_known_facts(question, user_id=None, token_id=None, now=now), question, now=now)


def _facts_allowed(*, actor: ActingUser, token: ApiToken | None, question: Question, now: datetime) -> KnownFacts:
    """The facts of a question this asker may put: every name known, a pipeline asking, within its token's scope."""
    known = _known_facts(question, user_id=actor.pk, token_id=token.pk if token else None, now=now)
    if not known.may_ask:
        raise Forbidden("The gate is for pipelines.")
    scope = token.credential_scope(read=(known.scope_services, known.scope_environments)) if token else None
    require_scope(scope, service=ConfigurationItem(id=known.service["id"], name=known.service["name"]),
                  environment=Environment(id=known.environment["id"], name=known.environment["name"]))
    return known


def deployment_check(*, actor: ActingUser, token: ApiToken | None, question: Question) -> DeploymentCheck:
    """Answer, with every reason found, and record the question and the answer in the ledger."""
    now = timezone.now()
    facts = _facts_allowed(actor=actor, token=token, question=question, now=now)
    reasons = gate_reasons(facts, question, now=now)
    return DeploymentCheck.objects.create(
        change_id=facts.change["id"] if facts.change else None, service_id=facts.service["id"],
        environment_id=facts.environment["id"], digest=question.digest,
        artifact_id=facts.artifact["id"] if facts.artifact else None,
        decision=GateDecision.DENY if reasons else GateDecision.ALLOW, reasons=list(reasons), asked_by=actor,
        asked_at=now, valid_until=now + VALID_FOR,
    )


def change_for_deployment(service: ConfigurationItem, environment: Environment, at: datetime,
                          digest: str = "") -> ChangeRequest | None:
    """For protocols that name no change: the approved change covering this service and environment now,
    preferring one pinned to this build."""
    candidates = ChangeRequest.objects.filter(
        window_open_q(at), status__in=APPROVED_STATES, environment=environment, affected_cis=service,
    ).exclude(held_by__in=Lockdown.objects.filter(Lockdown.in_force_at(at)).values("pk")).order_by("planned_start")
    pinned = candidates.filter(pinned_digests__contains=[digest]).first() if digest else None
    return pinned or candidates.filter(pinned_digests=[]).first()


# --- reporting back --------------------------------------------------------------------------------------------

def deployment_start(*, actor: ActingUser, token: ApiToken | None, check: DeploymentCheck) -> tuple[Deployment, bool]:
    """The pipeline reports that it starts what the gate allowed; one deployment at a time per environment. The
    same start reported again while it runs (a retry, or GitHub's status of it came first) is the deployment
    already recorded; a check that started a deployment now ended starts no other. True when recorded now."""
    now = timezone.now()
    question = Question(change=check.change.number if check.change else "", service=check.service.name,
                        environment=check.environment.name, digest=check.digest)
    facts = _facts_allowed(actor=actor, token=token, question=question, now=now)
    _require_allowed(check)
    recorded = deployment_of_check(check.pk)
    if recorded is not None and recorded.is_running:
        return recorded, False
    if recorded is not None:
        raise Conflict(f"This check started {recorded.number}, which ended "
                       f"{recorded.get_status_display().lower()}: ask the gate again.", field="check_id",
                       code="check_used")
    if check.valid_until < now:
        raise Conflict("This check has expired: ask the gate again.", field="check_id", code="check_expired")
    # The answer holds for minutes; a lockdown, a newer build gone live or a change put on hold since then wins.
    reasons = gate_reasons(facts, question, now=now)
    if reasons:
        message = "What this check allowed no longer holds: ask the gate again."
        raise Conflict(message, field="check_id", code="check_outdated", details=[
            {"code": "check_outdated", "message": message, "field": "check_id"},
            *({**reason, "field": "check_id"} for reason in reasons)])
    return _deployment_record(actor=actor, check=check)


def deployment_observed(*, actor: ActingUser, check: DeploymentCheck) -> Deployment:
    """A deployment that started elsewhere under an allowed check without asking again (GitHub runs the job once
    its review is approved, maybe long after): recorded as it ran, however old the check."""
    if not can_report_deployments(actor):
        raise Forbidden("Reporting deployments is for pipelines.")
    _require_allowed(check)
    recorded = deployment_of_check(check.pk)
    return recorded if recorded is not None else _deployment_record(actor=actor, check=check)[0]


def _require_allowed(check: DeploymentCheck) -> None:
    if check.decision != GateDecision.ALLOW:
        raise Conflict("The gate denied this check: nothing may be deployed under it.", field="check_id",
                       code="check_denied")


def _deployment_record(*, actor: ActingUser, check: DeploymentCheck) -> tuple[Deployment, bool]:
    """Record the start, and move its change to implementing with it (a window closed since an old check was
    allowed leaves the change where it is, and the ledger says why)."""
    assert check.artifact is not None  # called after _require_allowed: the gate denies an unknown artifact
    with transaction.atomic():
        deployment, recorded = deployment_record(
            actor=actor, service=check.service, environment=check.environment, artifact=check.artifact,
            change_number=check.change.number if check.change else "", check_id=check.pk)
        if recorded:
            _change_follows(deployment, change_request_deployment_started)
    return deployment, recorded


def _change_follows(deployment: Deployment, move, *args) -> None:
    try:
        with transaction.atomic():
            move(deployment, *args)
    except Conflict as refusal:
        audit_record("change_not_moved", obj=deployment, context={"reason": str(refusal)})


def deployment_finish(*, actor: ActingUser, token: ApiToken | None, deployment: Deployment, status: str) -> Deployment:
    if not can_report_deployments(actor):
        raise Forbidden("Reporting deployments is for pipelines.")
    require_scope(token.credential_scope() if token else None, service=deployment.service,
                  environment=deployment.environment)
    if status not in FINISHED:
        raise InvalidInput("status must be succeeded, failed or rolled_back.", field="status")
    with transaction.atomic():
        deployment = deployment_end(deployment, status)
        _change_follows(deployment, change_request_deployment_ended, CHANGE_AFTER_DEPLOYMENT[status])
    return deployment


def deployment_abandon(*, actor: ActingUser, deployment: Deployment, reason: str) -> Deployment:
    """A release manager ends a deployment whose end never came (a cancelled job, a lost runner), freeing the
    environment it holds; what ran is unknown, so it ends abandoned, with the reason in the ledger."""
    if not can_end_deployment(actor):
        raise Forbidden("Only a release manager ends a deployment by hand.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the deployment is ended by hand.", field="reason")
    with transaction.atomic():
        deployment = deployment_end(deployment, DeploymentStatus.ABANDONED)
        audit_record("deployment_abandoned", obj=deployment, context={"reason": reason[:1000]})
    return deployment
