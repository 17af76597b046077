"""Every write to a change: one function per use case, one transaction, the actor passed in."""

import copy
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from cmdb.models import ConfigurationItem
from cmdb.selectors import impact_walk
from governance.audit.ledger import audit_record
from governance.calendar.selectors import (
    describe_next,
    freezes_covering,
    inside_maintenance,
    maintenance_windows_for,
)
from governance.calendar.verdict import calendar_verdict
from governance.changes import risk
from governance.changes.notifications import approvers_notify_queued, mail_on_commit, requester_notify_queued
from governance.changes.permissions import (
    can_raise_change,
    edit_refusal,
    mover_facts,
    owning_teams,
    retrospective_refusal,
)
from governance.changes.selectors import (
    ApprovalState,
    change_hold,
    decision_refusal,
    decision_roles,
    outstanding_approvals,
)
from governance.changes.standard import fit_refusal
from governance.changes.workflow import SYSTEM, ChangeFacts, transition_refusal
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.core.fields import field_label
from governance.core.inputs import MAX_NAMES_PER_LIST
from governance.itsm.outbox import outbox_enqueue
from governance.models.calendar import MaintenanceEnforcement, Severity
from governance.models.changes import (
    READY_STATES,
    Approval,
    ApprovalPolicy,
    ApprovalRequirement,
    CabAgendaItem,
    CabMeeting,
    ChangeRequest,
    ChangeStatusChange,
    ChangeType,
    Decision,
    StandardChangeTemplate,
)
from governance.models.changes import ChangeStatus as S
from governance.roles import implementer_refusal
from releases.models import HOLDING_STATUSES, Deployment, DeploymentStatus

# What an approval was given for: changing any of these after approval makes the approvals stale.
MATERIAL_FIELDS = ("environment", "planned_start", "planned_end", "implementer", "pinned_digests", "rolls_back")
EDITABLE_FIELDS = (
    "title", "description", "change_type", "template", "implementer", "environment", "planned_start",
    "planned_end", "implementation_plan", "test_evidence", "backout_plan", "rollback_error_rate_pct",
    "rollback_latency_p99_ms", "rollback_failed_health_checks", "release_strategy", "strategy_reason",
    "feature_flags", "pinned_digests", "rolls_back",
)
RECENT_DAYS = 90


def add_business_days(start: datetime, days: int) -> datetime:
    """`days` working days after `start`, skipping Saturdays and Sundays."""
    moment = start
    while days > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            days -= 1
    return moment


def _facts(change: ChangeRequest) -> ChangeFacts:
    return ChangeFacts(
        status=change.status, change_type=change.change_type, has_cis=change.affected_cis.exists(),
        has_environment=change.environment_id is not None, planned_start=change.planned_start,
        planned_end=change.planned_end, has_implementation_plan=bool(change.implementation_plan.strip()),
        has_backout_plan=bool(change.backout_plan.strip()), has_template=change.template_id is not None,
        retrospective_done=change.retrospective_done_at is not None,
    )


def _locked(change: ChangeRequest) -> ChangeRequest:
    """The change re-read under a row lock: two people acting on it at once take turns here."""
    return ChangeRequest.objects.select_for_update().get(pk=change.pk)


# The moves the requester and the implementer are told of by e-mail (the approvers are told of reviews).
TOLD_TO_REQUESTER = (S.APPROVED, S.REJECTED, S.SCHEDULED)


def _move(change: ChangeRequest, target: str, *, actor: ActingUser | None, reason: str = "", now: datetime) -> None:
    ChangeStatusChange.objects.create(change=change, from_status=change.status, to_status=target, actor=actor,
                                      reason=reason, at=now)
    change.status = target
    if target == S.APPROVED:
        change.approved_at = now
        if change.change_type == ChangeType.EMERGENCY and change.retrospective_due is None:
            change.retrospective_due = add_business_days(now, settings.EMERGENCY_RETROSPECTIVE_BUSINESS_DAYS)
    if target == S.CAB_REVIEW:
        change.review_requested_at = now
        change.last_reminder_at = None
    if target == S.DRAFT:  # a resubmission is reviewed afresh: earlier requirements and approvals stop counting
        change.revision += 1
    change.save()
    outbox_enqueue(change, target)  # the ITSM tools' copies follow the move, committed with it
    if target in TOLD_TO_REQUESTER:
        mail_on_commit(requester_notify_queued, change.pk, target, actor.pk if actor is not None else None)


def _validated(change: ChangeRequest) -> None:
    from django.core.exceptions import ValidationError

    try:
        change.full_clean(exclude=["number", "requester"], validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(messages[0], field=None if field == "__all__" else field) from None


def _refuse_implementer(fields: dict) -> None:
    """Whoever carries a change out is an active person who may: not an auditor, not a pipeline's account."""
    refusal = implementer_refusal(fields.get("implementer"))
    if refusal:
        raise InvalidInput(refusal, field="implementer", code="not_an_implementer")


def _refuse_too_many(cis: list[ConfigurationItem] | None) -> None:
    if cis is not None and len(cis) > MAX_NAMES_PER_LIST:
        raise InvalidInput(f"A change names at most {MAX_NAMES_PER_LIST} CIs: split it.", field="affected_cis",
                           code="too_many")


def change_request_create(*, actor: ActingUser, cis: list[ConfigurationItem], **fields) -> ChangeRequest:
    if not can_raise_change(actor):
        raise Forbidden("Raising a change needs the requester role.")
    _refuse_too_many(cis)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]} cannot be set here.", field=sorted(unknown)[0])
    _refuse_implementer(fields)
    with transaction.atomic():
        change = ChangeRequest(requester=actor, **fields)
        _validated(change)
        _refuse_outside_template(change, cis)
        change.save()
        change.affected_cis.set(cis)
        outbox_enqueue(change, "created")
    return change


# What a standard change's fit to its template depends on, besides the risk known only at assessment.
FIT_FIELDS = ("change_type", "template", "environment")


def _refuse_outside_template(change: ChangeRequest, cis: list[ConfigurationItem]) -> None:
    """A standard change that could not be submitted from its template is refused as early as that is known."""
    if change.change_type == ChangeType.STANDARD and change.template is not None:
        refusal = fit_refusal(change.template, cis=cis, environment=change.environment)
        if refusal:
            raise refusal


def change_request_update(*, actor: ActingUser, change: ChangeRequest, cis: list[ConfigurationItem] | None = None,
                          **fields) -> ChangeRequest:
    """Edit a change. Before submission the requester edits anything; afterwards the requester or a release
    manager may move its window, environment or CIs, which sends it back to review if it was approved."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]} cannot be changed here.", field=sorted(unknown)[0])
    _refuse_too_many(cis)
    _refuse_implementer(fields)
    now = timezone.now()
    with transaction.atomic():
        change = _locked(change)
        refusal = edit_refusal(actor, change)
        if refusal is not None:
            raise refusal
        if change.status != S.DRAFT:
            locked = set(fields) - set(MATERIAL_FIELDS) - {"title", "description"}
            if locked:
                field = sorted(locked)[0]
                label = field_label(ChangeRequest, field)
                raise Conflict(f"The {label} is fixed once the change is submitted.", field=field)
        before = {name: getattr(change, name) for name in MATERIAL_FIELDS}
        before_cis = set(change.affected_cis.values_list("pk", flat=True))
        for name, value in fields.items():
            setattr(change, name, value)
        _validated(change)
        if cis is not None or set(fields) & set(FIT_FIELDS):
            _refuse_outside_template(change, list(change.affected_cis.all()) if cis is None else cis)
        if change.status != S.DRAFT:  # what was submitted is reviewed: it may move, not disappear
            gone = [name for name in ("environment", "planned_start", "planned_end") if getattr(change, name) is None]
            gone += ["cis"] if cis is not None and not cis else []
            if gone:
                raise InvalidInput("A submitted change keeps its environment, window and CIs: change them rather "
                                   "than remove them.", field=gone[0])
        changed = [name for name in MATERIAL_FIELDS if getattr(change, name) != before[name]]
        if cis is not None:
            if change.status != S.DRAFT and {c.pk for c in cis} != before_cis:
                changed.append("affected CIs")
            change.affected_cis.set(cis)
        change.save()
        outbox_enqueue(change, "updated")
        if changed and (change.status == S.CAB_REVIEW or change.status in READY_STATES):
            _approvals_go_stale(change, actor=actor, what=changed, now=now)
    return change


def _approvals_go_stale(change: ChangeRequest, *, actor: ActingUser, what: list[str], now: datetime) -> None:
    """What was approved changed: a new revision, assessed and routed again; earlier approvals stop counting."""
    stale = list(Approval.objects.filter(change=change, revision=change.revision).values_list("approver_id",
                                                                                            flat=True))
    change.revision += 1
    reason = f"approvals went stale: {', '.join(what)} changed"
    _assess(change, now=now)
    if change.change_type == ChangeType.STANDARD:  # approved by its template for as long as it fits it
        template = _standard_approval(change)
        ChangeStatusChange.objects.create(change=change, from_status=change.status, to_status=change.status,
                                          actor=actor, at=now,
                                          reason=f"{reason}; still fits {template.name}, version {template.version}")
        return
    if _require_approvals(change):
        if change.status == S.CAB_REVIEW:  # already in review: record the new revision, stay there
            ChangeStatusChange.objects.create(change=change, from_status=S.CAB_REVIEW, to_status=S.CAB_REVIEW,
                                              actor=actor, reason=reason, at=now)
            # A new request for approval: it gets a full expiry period and reminders of its own.
            change.review_requested_at, change.last_reminder_at = now, None
            change.save(update_fields=["review_requested_at", "last_reminder_at", "updated_at"])
        else:
            _move(change, S.CAB_REVIEW, actor=actor, reason=reason, now=now)
        _notify(change, "review")
    elif change.status == S.CAB_REVIEW:
        _approve_automatically(change, reason=f"{reason}; no approval policy applies any more", now=now)
    if stale:
        _notify(change, "stale", stale)


FREEZE_NEAR = timedelta(hours=48)


def calendar_refusal(change: ChangeRequest, *, target: str, now: datetime) -> str | None:
    """Why the calendar stops this change from being approved, scheduled or implemented now, if it does:
    a lockdown, a hard freeze over its window (emergency changes excepted: the emergency CAB decides), or a
    maintenance window it falls outside of where that is refused."""
    cis = list(change.affected_cis.all())
    if target == S.IMPLEMENTING:
        held_by = change_hold(change, now)
        if held_by is not None:
            return f"This change is on hold: {held_by}."
    verdict = calendar_verdict(cis, change.environment_id, change.change_type, change.planned_start,
                               change.planned_end, now)
    for lockdown in verdict.lockdowns:
        return f"A lockdown stops the line: {lockdown.reason} (declared {lockdown.declared_at:%Y-%m-%d %H:%M} UTC)."
    for hit in verdict.stopping_freezes:  # a freeze declared after scheduling stops it too
        return (f"The window meets the hard freeze {hit.freeze.name} "
                f"({hit.starts:%Y-%m-%d %H:%M} to {hit.ends:%Y-%m-%d %H:%M} UTC): move the change.")
    if change.planned_start is None or change.planned_end is None:
        return None
    if target == S.SCHEDULED:
        windows = maintenance_windows_for(change.change_type, cis, change.environment_id)
        refusing = [w for w in windows if w.enforcement == MaintenanceEnforcement.REFUSE]
        # Inside a flagging window is no way out of a refusing one: the change must fit a refusing window.
        if refusing and not inside_maintenance(refusing, change.planned_start, change.planned_end):
            return "The window is outside every maintenance window allowed here: " + "; ".join(
                describe_next(w, now) for w in refusing) + "."
    return None


def _freeze_override(change: ChangeRequest) -> list[str]:
    """The hard freezes an emergency change goes ahead in, by the emergency CAB's decision."""
    verdict = calendar_verdict(list(change.affected_cis.all()), change.environment_id, change.change_type,
                               change.planned_start, change.planned_end, timezone.now())
    return sorted({hit.freeze.name for hit in verdict.overridden_freezes})


def change_request_transition(*, actor: ActingUser, change: ChangeRequest, target: str,
                              reason: str = "") -> ChangeRequest:
    """A person's move of a change (submit, schedule, implement, complete, close, cancel...)."""
    if target not in S.values:
        raise InvalidInput(f"{target!r} is not a change state.", field="target")
    now = timezone.now()
    with transaction.atomic():
        change = _locked(change)
        refusal = transition_refusal(_facts(change), target, mover_facts(actor, change), now)
        if refusal is None and target in (S.SCHEDULED, S.IMPLEMENTING):
            refusal = calendar_refusal(change, target=target, now=now)
        if refusal:
            raise Conflict(refusal, field="target", code="transition_not_allowed")
        _move(change, target, actor=actor, reason=reason, now=now)
        if target == S.SUBMITTED:
            _assess_and_route(change, now=now)
    return change


def change_request_follow_deployment(*, change: ChangeRequest, target: str, reason: str) -> ChangeRequest:
    """Changeboard's own move of a change as the deployment it runs for it goes (implementing, then completed,
    failed or rolled back), as the lifecycle's table allows Changeboard itself."""
    now = timezone.now()
    with transaction.atomic():
        change = _locked(change)
        refusal = transition_refusal(_facts(change), target, SYSTEM, now)
        if refusal:
            raise Conflict(refusal, field="change", code="transition_not_allowed")
        _move(change, target, actor=None, reason=reason, now=now)
    return change


# The change's state once a deployment of it ends; an abandoned one (its end never came) leaves the change to a
# person, since nobody knows what ran.
CHANGE_AFTER_DEPLOYMENT: dict[str, str] = {
    DeploymentStatus.SUCCEEDED: S.COMPLETED,
    DeploymentStatus.FAILED: S.FAILED,
    DeploymentStatus.ROLLED_BACK: S.ROLLED_BACK,
}


def change_request_deployment_started(deployment: Deployment) -> None:
    """In the transaction that starts a deployment, whoever runs it (a pipeline reporting it, or Changeboard's
    workers): its approved or scheduled change goes implementing."""
    change = ChangeRequest.objects.filter(number=deployment.change_number, status__in=(S.APPROVED, S.SCHEDULED)).first()
    if change is not None:
        change_request_follow_deployment(change=change, target=S.IMPLEMENTING, reason=f"{deployment.number} started")


def change_request_deployment_ended(deployment: Deployment, target: str) -> None:
    """In the transaction that ends a deployment: its implementing change goes to `target`, once no other
    deployment of it (another service of the same change) is still queued or running."""
    others = (Deployment.objects.filter(change_number=deployment.change_number,
                                        status__in=(DeploymentStatus.QUEUED, *HOLDING_STATUSES))
              .exclude(pk=deployment.pk))
    change = ChangeRequest.objects.filter(number=deployment.change_number, status=S.IMPLEMENTING).first()
    if change is not None and not others.exists():
        change_request_follow_deployment(change=change, target=target,
                                         reason=f"{deployment.number} {deployment.get_status_display().lower()}")


def _assess_and_route(change: ChangeRequest, *, now: datetime) -> None:
    """submitted -> assessed -> CAB review, or straight to approved when nothing needs approving."""
    _assess(change, now=now, fresh=True)
    _move(change, S.ASSESSED, actor=None, reason=f"risk {change.risk_level} ({change.risk_score})", now=now)
    if change.change_type == ChangeType.STANDARD:
        template = _standard_approval(change)
        _approve_automatically(change, now=now,
                               reason=f"pre-approved standard change: {template.name}, version {template.version}")
        return
    if _require_approvals(change):
        _move(change, S.CAB_REVIEW, actor=None, reason="awaiting approvals", now=now)
        _notify(change, "review")
    else:
        _approve_automatically(change, reason="no approval policy applies", now=now)


def _standard_approval(change: ChangeRequest) -> StandardChangeTemplate:
    """The template version that approves a standard change, recorded on the change and in the ledger; a change
    that does not fit it is refused, and the caller's transaction (the whole submission or edit) rolls back."""
    assert change.template_id is not None  # a constraint: a standard change has its template
    # Locked so that an edit of the template, which withdraws its approval, waits or is waited for.
    template = (StandardChangeTemplate.objects.select_related("approved_by")
                .select_for_update(no_key=True, of=("self",)).get(pk=change.template_id))
    refusal = fit_refusal(template, cis=list(change.affected_cis.all()), environment=change.environment,
                          risk_level=change.risk_level)
    if refusal:
        raise refusal
    assert template.approved_by is not None  # fit_refusal refuses a template version nobody approved
    change.template_version = template.version
    change.save(update_fields=["template_version", "updated_at"])
    audit_record("standard_change_approved", obj=change, context={
        "template": template.name, "template_id": template.pk, "template_version": template.version,
        "template_approved_by": template.approved_by.get_username(), "risk_level": change.risk_level})
    return template


def _approve_automatically(change: ChangeRequest, *, reason: str, now: datetime) -> None:
    """Approval with nobody to ask still answers to the calendar: a lockdown or a hard freeze refuses it."""
    refusal = calendar_refusal(change, target=S.APPROVED, now=now)
    if refusal:
        raise Conflict(refusal, code="calendar")
    _move(change, S.APPROVED, actor=None, reason=reason, now=now)
    overridden = _freeze_override(change)
    if overridden:
        audit_record("freeze_override", obj=change, context={"freezes": overridden, "approved_by": "Changeboard"})


def _kept_compliance(change: ChangeRequest, cis: list[ConfigurationItem], *, fresh: bool) -> dict:
    """What the change keeps: the strictest flags, tier and tags each of its CIs had since submission (`fresh`
    starts again from the CIs as they are): lowering them while the change is open does not thin its approvals,
    nor does taking a CI off the change and putting it back."""
    kept = {} if fresh else change.compliance_at_submission
    return {**kept, **{str(ci.pk): _strictest(ci, kept.get(str(ci.pk), {})) for ci in cis}}


def _strictest(ci: ConfigurationItem, kept: dict) -> dict:
    flags = {name: bool(getattr(ci, name) or kept.get(name)) for name in ConfigurationItem.COMPLIANCE_FLAGS}
    return {**flags, "criticality": min(ci.criticality, kept.get("criticality", ci.criticality)),
            "tags": sorted({*ci.tags, *kept.get("tags", [])})}


def _controls(change: ChangeRequest, ci: ConfigurationItem) -> dict:
    """The flags, tier and tags of `ci` that the change's approvals follow."""
    return _strictest(ci, change.compliance_at_submission.get(str(ci.pk), {}))


def _assess(change: ChangeRequest, *, now: datetime, fresh: bool = False) -> None:
    for name, value in _assessment(change, now=now, fresh=fresh).items():
        setattr(change, name, value)
    change.save()


def _assessment(change: ChangeRequest, *, now: datetime, fresh: bool = False) -> dict:
    """What assessing the change now gives (its fields, unsaved): the compliance it keeps, its risk factor by
    factor, the recommended strategy and its blast radius."""
    cis = list(change.affected_cis.all())
    compliance = _kept_compliance(change, cis, fresh=fresh)
    impacted = {ci.pk for ci in cis}
    for ci in cis:
        impacted |= {entry.ci_id for entry in impact_walk(ci.pk, direction="dependents")}
    ci_ids = [ci.pk for ci in cis]
    recent = ChangeRequest.objects.filter(
        affected_cis__in=ci_ids, status__in=[S.COMPLETED, S.FAILED, S.ROLLED_BACK, S.CLOSED],
        updated_at__gte=now - timedelta(days=RECENT_DAYS),
    ).exclude(pk=change.pk).distinct()
    failed_ids = risk.failed_among(recent)
    inside, near = [], []
    if change.planned_start and change.planned_end:
        inside = freezes_covering(cis, change.environment_id, change.planned_start, change.planned_end)
        near = freezes_covering(cis, change.environment_id, change.planned_start - FREEZE_NEAR,
                                change.planned_end + FREEZE_NEAR)
    inside_names = sorted({hit.freeze.name for hit in inside})
    assessment = risk.assess(risk.RiskFacts(
        highest_criticality=min((_strictest(ci, compliance.get(str(ci.pk), {}))["criticality"] for ci in cis),
                                default=None),
        blast_radius=len(impacted) - len(ci_ids), change_type=change.change_type,
        production=bool(change.environment and change.environment.is_production),
        recent_changes=recent.count(), recent_failures=len(failed_ids),
        has_backout_plan=bool(change.backout_plan.strip()), has_test_evidence=bool(change.test_evidence.strip()),
        has_rollback_triggers=any(v is not None for v in (change.rollback_error_rate_pct,
                                                          change.rollback_latency_p99_ms,
                                                          change.rollback_failed_health_checks)),
        freeze_nearness_points=10 if near else 0,
        freezes_inside=inside_names,
        freeze_names=sorted({hit.freeze.name for hit in near} - set(inside_names)),
    ))
    return {"compliance_at_submission": compliance, "risk_score": assessment.score, "risk_level": assessment.level,
            "risk_factors": assessment.factors, "recommended_strategy": assessment.recommended_strategy,
            "recommended_strategy_reason": assessment.strategy_reason, "impacted_ci_ids": sorted(impacted)}


def approval_preview(change: ChangeRequest, *, now: datetime | None = None) -> ApprovalState:
    """The approvals submitting this draft now would ask for, worked out as submission does (assessed, then the
    matching policies and soft freezes), writing nothing. A standard change asks none: its template approves."""
    draft = copy.copy(change)  # assessed in memory only
    for name, value in _assessment(draft, now=now or timezone.now(), fresh=True).items():
        setattr(draft, name, value)
    if change.change_type == ChangeType.STANDARD:
        return ApprovalState(approvals=[], requirements=[])
    return ApprovalState(approvals=[], requirements=[
        ApprovalRequirement(change=change, role=role, count=count, policies=names, revision=change.revision)
        for count, role, names in _needs(draft).values()])


def matching_policies(change: ChangeRequest) -> list[ApprovalPolicy]:
    """The active policies whose every condition this change meets."""
    cis = list(change.affected_cis.all())
    controls = [_controls(change, ci) for ci in cis]
    tags = {tag for c in controls for tag in c["tags"]}
    tier = min((c["criticality"] for c in controls), default=None)
    matched = []
    for policy in ApprovalPolicy.objects.filter(active=True).prefetch_related("environments", "requirements__role"):
        types = policy.change_types or [ChangeType.NORMAL]  # emergency changes follow only policies naming them
        environments = {env.pk for env in policy.environments.all()}
        if (change.change_type in types
                and (not policy.risk_levels or change.risk_level in policy.risk_levels)
                and (not policy.production_only or (change.environment and change.environment.is_production))
                and (not environments or change.environment_id in environments)
                and (policy.max_criticality is None or (tier is not None and tier <= policy.max_criticality))
                and (not policy.tags or tags & set(policy.tags))
                and (not policy.sox_scoped or any(c["sox_scoped"] for c in controls))
                and (not policy.phi or any(c["phi"] for c in controls))
                and (not policy.pci or any(c["pci"] for c in controls))):
            matched.append(policy)
    return matched


def _require_approvals(change: ChangeRequest) -> bool:
    """Derive what the change needs at its current revision from the matching policies; True if anything."""
    needs = _needs(change)
    ApprovalRequirement.objects.bulk_create([
        ApprovalRequirement(change=change, role=role, count=count, policies=names, revision=change.revision)
        for count, role, names in needs.values()
    ])
    return bool(needs)


def _needs(change: ChangeRequest) -> dict[int, tuple]:
    """What the change needs from the matching policies and the soft freezes over its window: by role id, the
    count, the role and the policies that ask it."""
    needs: dict[int, tuple] = {}
    for policy in matching_policies(change):
        for requirement in policy.requirements.all():
            count, role, names = needs.get(requirement.role_id, (0, requirement.role, []))
            needs[requirement.role_id] = (max(count, requirement.count), role, [*names, policy.name])
    if change.planned_start and change.planned_end:
        soft = {hit.freeze.pk: hit.freeze for hit in freezes_covering(
            list(change.affected_cis.all()), change.environment_id, change.planned_start, change.planned_end)
            if hit.freeze.severity == Severity.SOFT}
        for freeze in soft.values():  # each soft freeze asks one approval more from its role
            assert freeze.extra_approval_role_id is not None  # a constraint: a soft freeze names its role
            count, role, names = needs.get(freeze.extra_approval_role_id, (0, freeze.extra_approval_role, []))
            needs[freeze.extra_approval_role_id] = (count + 1, role, [*names, f"soft freeze: {freeze.name}"])
    return needs


def approval_record(*, actor: ActingUser, change: ChangeRequest, decision: str, comment: str = "") -> Approval:
    """An approver's decision. The last approval a change needs approves it; any rejection rejects it."""
    if decision not in Decision.values:
        raise InvalidInput("decision must be approve or reject.", field="decision")
    now = timezone.now()
    with transaction.atomic():
        change = _locked(change)
        state, teams = ApprovalState.of(change), owning_teams(change)
        refusal = decision_refusal(actor, change, state, decision, teams)
        if refusal is not None:
            raise refusal
        if decision == Decision.REJECT and not comment.strip():  # the requester is told why, and the record keeps it
            raise InvalidInput("Say why you reject the change: the requester is told.", field="comment",
                               code="required")
        if decision == Decision.APPROVE:
            calendar = calendar_refusal(change, target=S.APPROVED, now=now)
            if calendar:
                raise Conflict(calendar, code="calendar")
        role = Group.objects.get(name=decision_roles(actor, change, state, decision, teams)[0])
        try:
            with transaction.atomic():
                approval = Approval.objects.create(change=change, approver=actor, decision=decision, role=role,
                                                   comment=comment, revision=change.revision, created_at=now)
        except IntegrityError:
            raise Conflict("You have already decided on this revision of the change.",
                           code="already_decided") from None
        if decision == Decision.REJECT:
            _move(change, S.REJECTED, actor=None, reason=f"rejected by {actor.get_username()}: {comment}".strip(),
                  now=now)
        elif not any(o.lacking for o in outstanding_approvals(change)):
            _move(change, S.APPROVED, actor=None, reason="every required approval given", now=now)
            overridden = _freeze_override(change)
            if overridden:
                audit_record("freeze_override", obj=change, context={"freezes": overridden,
                                                                     "approved_by": actor.get_username()})
    return approval


def change_retrospective_record(*, actor: ActingUser, change: ChangeRequest, notes: str) -> ChangeRequest:
    """The review an emergency change owes after the fact, by someone other than its requester."""
    if not notes.strip():
        raise InvalidInput("Say what the review found.", field="notes")
    with transaction.atomic():
        change = _locked(change)
        if change.change_type != ChangeType.EMERGENCY or change.approved_at is None:
            raise Conflict("Only an approved emergency change has a retrospective review.")
        if change.retrospective_done_at is not None:
            raise Conflict("The retrospective review is already recorded.")
        refusal = retrospective_refusal(actor, change)
        if refusal:
            raise Forbidden(refusal)
        change.retrospective_done_at, change.retrospective_notes = timezone.now(), notes
        change.save(update_fields=["retrospective_done_at", "retrospective_notes", "updated_at"])
    return change


def approval_requests_expire(*, now: datetime | None = None) -> int:
    """Changes left in review longer than APPROVAL_REQUEST_EXPIRY_DAYS go back to draft."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.APPROVAL_REQUEST_EXPIRY_DAYS)
    expired = 0
    for change_id in ChangeRequest.objects.filter(status=S.CAB_REVIEW, review_requested_at__lt=cutoff).values_list(
            "pk", flat=True):
        with transaction.atomic():
            change = ChangeRequest.objects.select_for_update().get(pk=change_id)
            if (change.status == S.CAB_REVIEW and change.review_requested_at is not None
                    and change.review_requested_at < cutoff):
                _move(change, S.DRAFT, actor=None, reason="the approval request expired", now=now)
                expired += 1
    return expired


def approval_reminders_send(*, now: datetime | None = None) -> int:
    """Remind the approvers of changes waiting longer than APPROVAL_REMINDER_HOURS since the last nudge."""
    now = now or timezone.now()
    due = now - timedelta(hours=settings.APPROVAL_REMINDER_HOURS)
    sent = 0
    waiting = ChangeRequest.objects.filter(status=S.CAB_REVIEW, review_requested_at__lt=due).filter(
        Q(last_reminder_at__isnull=True) | Q(last_reminder_at__lt=due))
    for change_id in waiting.values_list("pk", flat=True):
        # A conditional update claims the reminder, so two workers never send it twice.
        claimed = ChangeRequest.objects.filter(pk=change_id).filter(
            Q(last_reminder_at__isnull=True) | Q(last_reminder_at__lt=due)).update(last_reminder_at=now)
        if claimed:
            _notify(ChangeRequest.objects.get(pk=change_id), "reminder")
            sent += 1
    return sent


def _notify(change: ChangeRequest, kind: str, user_ids: list[int] | None = None) -> None:
    mail_on_commit(approvers_notify_queued, change.pk, kind, user_ids)


def _refuse_untitled(title: str) -> None:
    if not title.strip():
        raise InvalidInput("A meeting needs a title.", field="title")


def cab_meeting_create(*, actor: ActingUser, title: str, starts_at: datetime, attendees=(),
                       minutes: str = "") -> CabMeeting:
    """A CAB meeting whose agenda holds every change awaiting review, oldest request first."""
    if not actor.has_perm("governance.add_cabmeeting"):
        raise Forbidden("Release managers organise CAB meetings.")
    _refuse_untitled(title)
    with transaction.atomic():
        meeting = CabMeeting.objects.create(title=title, starts_at=starts_at, organiser=actor, minutes=minutes)
        meeting.attendees.set(attendees)
        cab_meeting_refresh_agenda(actor=actor, meeting=meeting)
    return meeting


def cab_meeting_refresh_agenda(*, actor: ActingUser, meeting: CabMeeting) -> CabMeeting:
    if not actor.has_perm("governance.change_cabmeeting"):
        raise Forbidden("Release managers organise CAB meetings.")
    with transaction.atomic():
        meeting = CabMeeting.objects.select_for_update().get(pk=meeting.pk)  # two refreshes take turns
        listed = set(meeting.agenda.values_list("change_id", flat=True))
        position = (meeting.agenda.aggregate(last=Max("position"))["last"] or 0) + 1
        waiting = ChangeRequest.objects.filter(status=S.CAB_REVIEW).exclude(pk__in=listed).order_by(
            "review_requested_at", "pk")
        CabAgendaItem.objects.bulk_create([CabAgendaItem(meeting=meeting, change=change, position=position + n)
                                           for n, change in enumerate(waiting)])
    return meeting


def cab_meeting_record(*, actor: ActingUser, meeting: CabMeeting, minutes: str | None = None,
                       outcomes: dict[int, tuple[str, str]] | None = None, attendees=None, title: str | None = None,
                       starts_at: datetime | None = None) -> CabMeeting:
    """Minutes, attendees and each agenda item's outcome and notes; the title and time if they moved. `None`
    keeps what the meeting has."""
    if not actor.has_perm("governance.change_cabmeeting"):
        raise Forbidden("Release managers keep the minutes of CAB meetings.")
    if title is not None:
        _refuse_untitled(title)
    with transaction.atomic():
        meeting = CabMeeting.objects.select_for_update().get(pk=meeting.pk)
        given = {"minutes": minutes, "title": title, "starts_at": starts_at}
        changed = [name for name, value in given.items() if value is not None]
        for name in changed:
            setattr(meeting, name, given[name])
        if changed:
            meeting.save(update_fields=changed)
        if attendees is not None:
            meeting.attendees.set(attendees)
        given_outcomes = outcomes or {}
        for item in meeting.agenda.filter(pk__in=list(given_outcomes)):
            item.outcome, item.notes = given_outcomes[item.pk]
            item.save(update_fields=["outcome", "notes"])
    return meeting
