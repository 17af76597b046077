"""The exceptions of a period's population, each with its reason in words and the facts behind it.

Who held which role is read from the ledger as it was at the moment that matters (group memberships and team
role grants are governed rows, so every grant and removal is an event), never from today's tables: a role given
for an afternoon and taken back still shows."""

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from governance.evidence.period import Period
from governance.evidence.population import Matched, matched_chunks, production_deployments
from governance.models import AuditEvent, ChangeRequest, ChangeType
from governance.models.changes import ChangeStatus
from governance.roles import Role, team_role_codename
from releases.models import DeploymentKind

# States a change reaches only once approved; one that left them (rejected, cancelled) has no approval to show.
REFUSED_STATES = (ChangeStatus.DRAFT, ChangeStatus.SUBMITTED, ChangeStatus.ASSESSED, ChangeStatus.CAB_REVIEW,
                  ChangeStatus.REJECTED, ChangeStatus.CANCELLED)


@dataclass(frozen=True)
class EvidenceException:
    """One finding about one record (a DEP or a CHG number); `key` names it for the auditor's notes."""

    kind: str
    key: str
    record: str
    reason: str
    evidence: dict


def exception(kind: str, record: str, reason: str, evidence: dict) -> EvidenceException:
    return EvidenceException(kind=kind, key=f"{kind}:{record}", record=record, reason=reason, evidence=evidence)


MEMBERSHIP, USER_TEAM_ROLE, GROUP_TEAM_ROLE = ("auth.user_groups", "guardian.userobjectpermission",
                                              "guardian.groupobjectpermission")


class Spans:
    """When each key was on and off, from create and delete events in ledger order."""

    def __init__(self) -> None:
        self._spans: dict[tuple, list[tuple[datetime, bool]]] = defaultdict(list)

    def add(self, key: tuple, at: datetime, on: bool) -> None:
        self._spans[key].append((at, on))

    def sort(self) -> None:
        for spans in self._spans.values():
            spans.sort(key=lambda span: span[0])

    def on(self, key: tuple, at: datetime) -> bool:
        spans = self._spans.get(key, [])
        index = bisect_right([when for when, _ in spans], at)
        return index > 0 and spans[index - 1][1]

    def known(self) -> list[tuple]:
        return list(self._spans)


class RoleHistory:
    """Who held which role when, from the ledger: a role group's membership (the role for every team), and a team
    role (a django-guardian permission on a cmdb team) granted to the person or to a group they belonged to at the
    time, each as the events that made and removed it."""

    def __init__(self, until: datetime) -> None:
        roles_of_groups = dict(Group.objects.filter(name__in=Role.values).values_list("pk", "name"))
        team_roles = {pk: codename.removeprefix("approve_as_") for pk, codename in Permission.objects.filter(
            codename__in=[team_role_codename(r) for r in Role.values], content_type__app_label="cmdb",
            content_type__model="team").values_list("pk", "codename")}
        self._roles_of_groups = roles_of_groups
        self._memberships = Spans()     # (user, group)
        self._user_grants = Spans()     # (user, role, team)
        self._group_grants = Spans()    # (group, role, team)
        # The governed tables' events are few next to the ledger's; the (object_type, object_id, -seq) index finds
        # them.
        events = (AuditEvent.objects.filter(object_type__in=(MEMBERSHIP, USER_TEAM_ROLE, GROUP_TEAM_ROLE),
                                            occurred_at__lt=until)
                  .order_by("seq").values_list("object_type", "action", "changes", "occurred_at"))
        for object_type, action, changes, at in events:
            if action == "update":
                continue
            side = "before" if action == "delete" else "after"
            row = {name: (change or {}).get(side) for name, change in changes.items()}
            on = action == "create"
            if object_type == MEMBERSHIP:
                if row.get("user_id") is not None and row.get("group_id") is not None:
                    self._memberships.add((row["user_id"], row["group_id"]), at, on)
                continue
            role, team = team_roles.get(row.get("permission_id") or 0), row.get("object_pk")
            holder = row.get("user_id") if object_type == USER_TEAM_ROLE else row.get("group_id")
            if role is None or team is None or holder is None:
                continue
            grants = self._user_grants if object_type == USER_TEAM_ROLE else self._group_grants
            grants.add((holder, role, str(team)), at, on)
        for spans in (self._memberships, self._user_grants, self._group_grants):
            spans.sort()
        self._groups_of: dict[int, list[int]] = defaultdict(list)
        for user_id, group in self._memberships.known():
            self._groups_of[user_id].append(group)

    def held(self, user_id: int, role: str, at: datetime, teams: Iterable[int] = ()) -> bool:
        """Did the ledger show `user_id` holding `role` at `at`: for every team, or for one of `teams`, granted to
        them or to a group they were in?"""
        if any(name == role and self._memberships.on((user_id, group), at)
               for group, name in self._roles_of_groups.items()):
            return True
        for team in map(str, teams):
            if self._user_grants.on((user_id, role, team), at):
                return True
            if any(self._group_grants.on((group, role, team), at) and self._memberships.on((user_id, group), at)
                   for group in self._groups_of.get(user_id, ())):
                return True
        return False


def period_exceptions(period: Period) -> list[EvidenceException]:
    """Every exception of the period's population, ordered by (record, kind)."""
    finder = ExceptionFinder(period)
    for chunk in matched_chunks(production_deployments(period)):
        finder.add(chunk)
    return finder.found()


class ExceptionFinder:
    """The exceptions of a population read a chunk at a time, for a reader that walks the population once for
    several purposes (the evidence bundle)."""

    def __init__(self, period: Period) -> None:
        self._roles = RoleHistory(until=period.end)
        self._found: dict[str, EvidenceException] = {}

    def add(self, chunk: list[Matched]) -> None:
        changes = [r.change for r in chunk if r.change]
        overrides, owners = _freeze_overrides(changes), _owning_teams(changes)
        for record in chunk:
            for finding in _deployment_exceptions(record, self._roles, overrides, owners):
                self._found.setdefault(finding.key, finding)

    def found(self) -> list[EvidenceException]:
        """Ordered by (record, kind)."""
        return sorted(self._found.values(), key=lambda e: (e.record, e.kind))


def _owning_teams(changes: list[ChangeRequest]) -> dict[int, set[int]]:
    """The teams owning each change's CIs, by change id: a team role counts for the changes of its team's CIs. The
    CMDB's owners as they are now (the ledger's record of a CI changing hands is not replayed)."""
    owners: dict[int, set[int]] = defaultdict(set)
    through = ChangeRequest.affected_cis.through
    for change_id, team_id in through.objects.filter(changerequest_id__in=[c.pk for c in changes]).values_list(
            "changerequest_id", "configurationitem__owner_team_id"):
        if team_id is not None:
            owners[change_id].add(team_id)
    return owners


def _freeze_overrides(changes: list[ChangeRequest]) -> dict[str, list[str]]:
    """The hard freezes each change was approved through by override, by change id, from the ledger."""
    if not changes:
        return {}
    freezes: dict[str, list[str]] = defaultdict(list)
    for object_id, context in AuditEvent.objects.filter(
            action="freeze_override", object_type="governance.changerequest",
            object_id__in=[str(c.pk) for c in changes]).order_by("seq").values_list("object_id", "context"):
        freezes[object_id].extend(context.get("freezes", []))
    return freezes


def _deployment_exceptions(record: Matched, roles: RoleHistory, overrides: dict[str, list[str]],
                           owners: dict[int, set[int]]) -> Iterator[EvidenceException]:
    deployment, change = record.deployment, record.change
    number, started = deployment.number, deployment.started_at
    facts = {"deployment": number, "service": deployment.service.name, "environment": deployment.environment.name,
             "started_at": started.isoformat(), "change": deployment.change_number}
    if deployment.kind == DeploymentKind.REPORTED and record.check is None:
        yield exception("no_allowing_check", number, f"{number} was reported with no gate check that allowed it.",
                        {**facts, "check_id": str(deployment.check_id or "")})
    if deployment.kind == DeploymentKind.REPORTED and not roles.held(deployment.reported_by_id, Role.SERVICE_ACCOUNT,
                                                                     started):
        yield exception("deployer_not_service_account", number,
                        f"{number} was reported by {deployment.reported_by.get_username()}, who was no service "
                        "account when it started.", {**facts, "reported_by": deployment.reported_by.get_username()})
    if change is None or change.approved_at is None or change.status in REFUSED_STATES:
        yield exception("no_approved_change", number,
                        f"{number} went to production with no approved change"
                        + (f" ({change.number} is {ChangeStatus(change.status).label.lower()})." if change else "."),
                        {**facts, "change_status": change.status if change else "",
                         "approved_at": _iso(change.approved_at) if change else None})
    if change is None:
        return
    yield from _approval_exceptions(record, roles, facts, owners.get(change.pk, set()))
    yield from _change_exceptions(change)
    if change.planned_start is None or change.planned_end is None or not (
            change.planned_start <= started < change.planned_end):
        yield exception("outside_window", number, f"{number} started outside the window of {change.number}.",
                        {**facts, "window_start": _iso(change.planned_start), "window_end": _iso(change.planned_end)})
    if overrides.get(str(change.pk)):
        freezes = sorted(set(overrides[str(change.pk)]))
        yield exception("freeze_override", number, f"{number} ran under {change.number}, approved through the hard "
                        f"freeze {', '.join(freezes)} by override.", {**facts, "freezes": freezes})
    if change.pinned_digests and deployment.artifact.digest not in change.pinned_digests:
        yield exception("digest_not_approved", number, f"{number} deployed a build {change.number} did not approve.",
                        {**facts, "digest": deployment.artifact.digest, "approved_digests": change.pinned_digests})


def _approval_exceptions(record: Matched, roles: RoleHistory, facts: dict,
                         teams: set[int]) -> Iterator[EvidenceException]:
    deployment, change = record.deployment, record.change
    assert change is not None
    started = deployment.started_at
    late = [a for a in record.approvals if a.created_at > started]
    if late or (change.approved_at is not None and change.approved_at > started):
        yield exception("approval_after_start", deployment.number,
                        f"{deployment.number} started before {change.number} was approved.",
                        {**facts, "approved_at": _iso(change.approved_at), "late_approvals": _approvals(late)})
    parts = {change.requester_id: "requester", change.implementer_id: "implementer"}
    own = [(a, parts[a.approver_id]) for a in record.approvals if a.approver_id in parts]
    if own:
        yield exception("self_approval", change.number, f"{change.number} was approved by its own "
                        f"{' and '.join(sorted({part for _, part in own}))}.",
                        {"change": change.number, "approvals": [{**_approval(a), "is": part} for a, part in own]})
    deployer = [a for a in record.approvals if a.approver_id == deployment.reported_by_id]
    if deployer:
        yield exception("self_approval", deployment.number, f"{deployment.number} was carried out by "
                        f"{deployment.reported_by.get_username()}, who approved {change.number}.",
                        {**facts, "approvals": _approvals(deployer)})
    unheld = [a for a in record.approvals
              if a.role and not roles.held(a.approver_id, a.role.name, a.created_at, teams)]
    if unheld:
        yield exception("approval_role_not_held", change.number,
                        f"{change.number} counted approvals for roles their approvers did not hold at the time.",
                        {"change": change.number, "approvals": _approvals(unheld)})


def _change_exceptions(change: ChangeRequest) -> Iterator[EvidenceException]:
    if not change.test_evidence.strip():
        yield exception("no_test_evidence", change.number, f"{change.number} went to production with no test "
                        "evidence.", {"change": change.number})
    if change.change_type != ChangeType.EMERGENCY:
        return
    review = {"change": change.number, "approved_at": _iso(change.approved_at),
              "retrospective_due": _iso(change.retrospective_due),
              "retrospective_done_at": _iso(change.retrospective_done_at)}
    due, done = change.retrospective_due, change.retrospective_done_at
    if done is None and (due is None or due < timezone.now()):
        yield exception("emergency_review_missing", change.number,
                        f"Emergency change {change.number} has no retrospective review, due "
                        f"{_iso(due) or 'from its approval'}.", review)
    elif done is not None and due is not None and done > due:
        yield exception("emergency_review_late", change.number,
                        f"The retrospective review of emergency change {change.number} came after it was due.", review)


def _approval(approval) -> dict:
    return {"approver": approval.approver.get_username(), "role": approval.role.name if approval.role else "",
            "decided_at": approval.created_at.isoformat()}


def _approvals(approvals) -> list[dict]:
    return [_approval(a) for a in approvals]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
