"""Reads of changes shared by the queue, the change page, the API and exports."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from guardian.shortcuts import get_users_with_perms

from cmdb.models import Team
from governance.calendar.selectors import FreezeHit
from governance.calendar.verdict import calendar_verdict
from governance.changes.permissions import (
    approver_roles,
    can_view_changes,
    owning_teams,
    segregation_refusal,
)
from governance.core.errors import Conflict, DomainError, Forbidden
from governance.models.calendar import Lockdown
from governance.models.changes import ACTIVE_STATES, Approval, ApprovalRequirement, ChangeRequest, Decision
from governance.models.changes import ChangeStatus as S
from governance.roles import APPROVER_ROLES, Role, team_role_codename, team_role_grants


@dataclass(frozen=True)
class Outstanding:
    role: str
    needed: int
    given: int

    @property
    def lacking(self) -> bool:
        return self.given < self.needed


@dataclass(frozen=True)
class ApprovalState:
    """The decisions and requirements of a change's current revision, read once for everything shown of them."""

    approvals: list[Approval]
    requirements: list[ApprovalRequirement]

    @classmethod
    def of(cls, change: ChangeRequest) -> "ApprovalState":
        current = {"change": change, "revision": change.revision}
        return cls(approvals=list(Approval.objects.filter(**current).select_related("approver", "role")),
                   requirements=list(ApprovalRequirement.objects.filter(**current).select_related("role")))

    def outstanding(self) -> list[Outstanding]:
        given = Counter(a.role.name for a in self.approvals if a.decision == Decision.APPROVE and a.role)
        return [Outstanding(role=r.role.name, needed=r.count, given=given[r.role.name]) for r in self.requirements]


def outstanding_approvals(change: ChangeRequest) -> list[Outstanding]:
    """Each requirement of the current revision with how many approvals it still lacks."""
    return ApprovalState.of(change).outstanding()


def change_requests() -> QuerySet[ChangeRequest]:
    return ChangeRequest.objects.select_related("requester", "implementer", "environment", "template")


def change_requests_visible_to(user) -> QuerySet[ChangeRequest]:
    if not can_view_changes(user):
        return ChangeRequest.objects.none()
    return change_requests()


# --- who may decide on a change: the rule, and its twin for lists ------------------------------------------------

def decision_refusal(user, change: ChangeRequest, state: ApprovalState, decision: str = Decision.APPROVE,
                     teams: list[Team] | None = None) -> DomainError | None:
    """Why `user` may not approve (or reject) this revision of `change`, if not: it must be in review, `user` did
    not request or implement it nor decide on this revision, and holds a role it still needs (to reject: any role
    it needs). Its twin for lists is `awaiting_approval_by`; a test holds the two to the same answers."""
    if change.status != S.CAB_REVIEW:
        return Conflict(f"This change is {S(change.status).label}, not awaiting approval.", code="not_in_review")
    refusal = segregation_refusal(user, change)
    if refusal:
        return Forbidden(refusal, code="segregation_of_duties")
    if any(a.approver_id == user.pk for a in state.approvals):
        return Conflict("You have already decided on this revision of the change.", code="already_decided")
    if not decision_roles(user, change, state, decision, teams):
        if decision != Decision.APPROVE:
            return Forbidden("You hold none of the roles this change needs.", code="role_not_needed")
        needed = ", ".join(sorted(o.role for o in state.outstanding() if o.lacking)) or "nothing more"
        return Forbidden(f"Your approval cannot count: the change still needs {needed}.", code="role_not_needed")
    return None


def decision_roles(user, change: ChangeRequest, state: ApprovalState, decision: str = Decision.APPROVE,
                   teams: list[Team] | None = None) -> list[str]:
    """The roles `user` would decide for: an approval counts for a role still lacking, a rejection for any."""
    held = approver_roles(user, change, owning_teams(change) if teams is None else teams)
    requirements = state.outstanding()
    wanted = {o.role for o in requirements if o.lacking} if decision == Decision.APPROVE \
        else {o.role for o in requirements}
    return sorted(held & wanted)


def awaiting_approval_by(user) -> Q:
    """Changes in review whose current revision still lacks approvals from a role `user` holds (globally or
    for a team owning one of its CIs), that `user` has not decided on, and did not request or implement:
    those `decision_refusal` lets `user` approve."""
    if not user.is_active:
        return Q(pk__in=[])
    global_roles = list(user.groups.filter(name__in=APPROVER_ROLES).values_list("name", flat=True))
    condition = Q(Exists(_lacking(global_roles)))
    for team_id, role in team_role_grants(user):
        owned = ChangeRequest.affected_cis.through.objects.filter(
            changerequest_id=OuterRef("pk"), configurationitem__owner_team_id=team_id)
        condition |= Q(Exists(_lacking([role]))) & Q(Exists(owned))
    decided = Exists(Approval.objects.filter(change=OuterRef("pk"), revision=OuterRef("revision"), approver=user))
    return Q(status=S.CAB_REVIEW) & condition & ~Q(decided) & ~Q(requester=user) & ~Q(implementer=user)


def _lacking(roles: list[str]) -> QuerySet[ApprovalRequirement]:
    """Requirements of the outer change's revision, for these roles, with approvals still missing."""
    given = (Approval.objects.filter(change=OuterRef("change"), revision=OuterRef("revision"), role=OuterRef("role"),
                                     decision=Decision.APPROVE)
             .values("change").annotate(n=Count("pk")).values("n"))
    return (ApprovalRequirement.objects.filter(change=OuterRef("pk"), revision=OuterRef("revision"),
                                               role__name__in=roles)
            .annotate(given=Coalesce(Subquery(given), 0)).filter(count__gt=F("given")))


def cab_queue(user) -> QuerySet[ChangeRequest]:
    """Open changes, the ones awaiting this user's approval first, then by window."""
    # "Awaits me" as `id IN (changes awaiting me)`: PostgreSQL builds that set once and hashes it. Written as
    # a per-row condition it was costed as if run for every open change, which set off JIT compilation:
    # 2.4 s for the first page of 5,000 open changes. No DISTINCT: nothing here joins a to-many relation
    # (filters stacked on the queue use EXISTS), and DISTINCT over every column sorted every open change.
    mine = ChangeRequest.objects.filter(awaiting_approval_by(user)).values("pk")
    return (change_requests_visible_to(user).filter(status__in=ACTIVE_STATES)
            .annotate(awaits_me=Case(When(pk__in=mine, then=Value(1)), default=Value(0),
                                     output_field=IntegerField()))
            .order_by("-awaits_me", "planned_start", "pk"))


def change_conflicts(change: ChangeRequest) -> QuerySet[ChangeRequest]:
    """Other active changes whose window overlaps this one and that touch its CIs or their blast radius,
    or whose blast radius holds this change's CIs."""
    if change.planned_start is None or change.planned_end is None:
        return ChangeRequest.objects.none()
    own = list(change.affected_cis.values_list("pk", flat=True))
    return changes_in_the_way(change, own, change.planned_start, change.planned_end, change_requests()).distinct()


def changes_in_the_way(change: ChangeRequest, own: list[int], start: datetime, end: datetime,
                       changes: QuerySet[ChangeRequest] | None = None) -> QuerySet[ChangeRequest]:
    """Of `changes` (all by default), the other active ones with a window meeting [start, end) that touch the
    CIs `own` of `change` or their blast radius, or whose blast radius holds them."""
    changes = ChangeRequest.objects.all() if changes is None else changes
    return (changes.filter(status__in=ACTIVE_STATES, planned_start__lt=end, planned_end__gt=start).exclude(pk=change.pk)
            .filter(Q(affected_cis__in=change.impacted_ci_ids or own) | Q(impacted_ci_ids__overlap=own)))


def approval_checklist(change: ChangeRequest, state: ApprovalState | None = None) -> list[dict]:
    """Who still has to approve: each role of the current revision, approvals given and still needed."""
    state = state or ApprovalState.of(change)
    policies = {r.role.name: r.policies for r in state.requirements}
    return [{"role": item.role, "needed": item.needed, "given": item.given, "done": not item.lacking,
             "policies": policies[item.role],
             "approvals": [a for a in state.approvals if a.role and a.role.name == item.role]}
            for item in state.outstanding()]


def decision_barred(user, change: ChangeRequest, state: ApprovalState, refusal: DomainError | None) -> str:
    """Why `user`, who holds a role this revision asks for, may not decide on it while it is in review (their
    own change, already decided, their role already given...), from `decision_refusal`'s answer `refusal`: told
    instead of buttons that are not there. Empty when they may decide, or when they hold no role the change asks
    for (they have nothing to decide)."""
    if change.status != S.CAB_REVIEW or refusal is None:
        return ""
    if not approver_roles(user, change) & {r.role.name for r in state.requirements}:
        return ""
    return refusal.message


# --- who can approve at all ------------------------------------------------------------------------------------

def role_holders(change: ChangeRequest, roles: list[str], teams: list[Team] | None = None) -> set:
    """Active people holding any of `roles`, as members of the role's group or for a team owning one of the
    change's CIs."""
    teams = owning_teams(change) if teams is None else teams
    users = set(get_user_model().objects.filter(groups__name__in=roles, is_active=True))
    for team in teams:
        for role in roles:
            # guardian's annotation covers its attach_perms form too, which gives names; this form gives users.
            granted = cast(QuerySet, get_users_with_perms(team, only_with_perms_in=[team_role_codename(role)],  # type: ignore[arg-type]
                                                          with_superusers=False))
            users |= set(granted.filter(is_active=True))
    return users


def role_label(role: str) -> str:
    return Role(role).label if role in Role.values else role


def _person(user) -> str:
    return user.get_full_name() or user.get_username()


@dataclass(frozen=True)
class ApprovalGap:
    """A role the change still needs more approvals from than there are people who may give them: those who
    may (`able`) and each other holder with why not (`barred`: "requester", "implementer" or the refusal)."""

    role: str
    lacking: int
    able: list = field(default_factory=list)
    barred: list[tuple] = field(default_factory=list)

    @property
    def message(self) -> str:
        label = role_label(self.role)
        if self.able:
            head = (f"{label} must give {self.lacking} more approvals, and only "
                    f"{', '.join(_person(user) for user in self.able)} may give one")
        elif not self.barred:
            head = f"Nobody holds {label}"
        else:
            but = [f"the {why} ({_person(user)})" if why in ("requester", "implementer") else f"{_person(user)} ({why})"
                   for user, why in self.barred]
            head = f"Nobody but {' and '.join(but)} holds {label}"
        advice = ("choose another implementer" if any(why == "implementer" for _, why in self.barred)
                  else f"ask an administrator to give {label} to someone else")
        return f"{head}: nobody can approve this change; {advice}."


def _why_barred(user, change: ChangeRequest, refusal: DomainError) -> str:
    if user.pk == change.requester_id:
        return "requester"
    if user.pk == change.implementer_id:
        return "implementer"
    return refusal.message


def approval_gaps(change: ChangeRequest, state: ApprovalState, teams: list[Team] | None = None) -> list[ApprovalGap]:
    """The roles of `state` (the change's revision in review, or the requirements a draft would get) that fewer
    people may approve for than approvals are lacking. Who may approve is `decision_refusal`'s answer for each
    holder of the role: the rule the service and the approvers' mail follow."""
    teams = owning_teams(change) if teams is None else teams
    gaps = []
    for item in (o for o in state.outstanding() if o.lacking):
        lacking = item.needed - item.given
        able, barred = [], []
        for user in sorted(role_holders(change, [item.role], teams), key=lambda u: u.pk):
            refusal = decision_refusal(user, change, state, teams=teams)
            if refusal is not None:
                barred.append((user, _why_barred(user, change, refusal)))
            else:
                able.append(user)
                if len(able) >= lacking:  # enough: the others need not be asked (a large CAB is many queries)
                    break
        if len(able) < lacking:
            gaps.append(ApprovalGap(role=item.role, lacking=lacking, able=able, barred=barred))
    return gaps


# --- the calendar's hold on a change -------------------------------------------------------------------------

def change_hold(change: ChangeRequest, at: datetime) -> Lockdown | None:
    """The lockdown holding `change` at `at`: a hold counts only while its lockdown is in force (one lifted or run
    out holds nothing, though the change may still name it)."""
    if change.held_by_id is None:
        return None
    return (Lockdown.objects.filter(Lockdown.in_force_at(at), pk=change.held_by_id)
            .select_related("declared_by").first())


def change_holds(changes, at: datetime) -> dict[int, Lockdown]:
    """`change_hold` for a page of changes, in one query: the lockdown holding each one held at `at`."""
    ids = {change.held_by_id for change in changes if change.held_by_id is not None}
    if not ids:
        return {}
    in_force = {lockdown.pk: lockdown for lockdown in
                Lockdown.objects.filter(Lockdown.in_force_at(at), pk__in=ids).select_related("declared_by")}
    return {change.pk: in_force[change.held_by_id] for change in changes if change.held_by_id in in_force}


def stopping_freezes(change: ChangeRequest, at: datetime, cis: list | None = None) -> list[FreezeHit]:
    """The hard freezes over the change's window that stop it (the calendar's verdict, which approval, scheduling
    and implementation ask): none for an emergency change or a change without a window. `cis` are the change's,
    when the caller read them already."""
    cis = list(change.affected_cis.all()) if cis is None else cis
    return calendar_verdict(cis, change.environment_id, change.change_type, change.planned_start,
                            change.planned_end, at).stopping_freezes


def retrospectives_overdue() -> QuerySet[ChangeRequest]:
    return change_requests().filter(change_type="emergency", approved_at__isnull=False,
                                    retrospective_done_at__isnull=True, retrospective_due__lt=timezone.now())


# Which of a page of changes have a conflict as `change_conflicts` defines one, for all of them in one query:
# another active change, windows overlapping, whose blast radius holds one of this change's CIs, or that
# touches a CI in this change's blast radius (served by the index on the CI column of the affected-CIs table).
# The window test comes first: it is cheap, and most changes fail it before their arrays are compared.
_CONFLICTED_SQL = """
SELECT c.id
FROM {change} c
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.configurationitem_id), '{{}}')::bigint[] AS ids
    FROM {through} a WHERE a.changerequest_id = c.id
) own
WHERE c.id = ANY(%(ids)s::bigint[]) AND c.planned_start IS NOT NULL AND c.planned_end IS NOT NULL
  AND (EXISTS (SELECT 1 FROM {change} o
               WHERE o.planned_start < c.planned_end AND o.planned_end > c.planned_start AND o.id <> c.id
                 AND o.status = ANY(%(active)s) AND o.impacted_ci_ids && own.ids)
       OR EXISTS (SELECT 1 FROM {through} oa JOIN {change} o ON o.id = oa.changerequest_id
                  WHERE oa.configurationitem_id = ANY(CASE WHEN cardinality(c.impacted_ci_ids) > 0
                                                           THEN c.impacted_ci_ids ELSE own.ids END)
                    AND o.id <> c.id AND o.status = ANY(%(active)s)
                    AND o.planned_start < c.planned_end AND o.planned_end > c.planned_start))
"""


def conflicted_change_ids(changes) -> set[int]:
    """The ids of those of `changes` that `change_conflicts` would find a conflict for (one query)."""
    ids = [change.pk for change in changes]
    if not ids:
        return set()
    sql = _CONFLICTED_SQL.format(change=ChangeRequest._meta.db_table,
                                 through=ChangeRequest.affected_cis.through._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"ids": ids, "active": [status.value for status in ACTIVE_STATES]})
        return {row[0] for row in cursor.fetchall()}


def approval_summaries(changes) -> dict[int, dict]:
    """For each change at its current revision: approvals needed and approvals given toward them (each role
    counted up to what it needs), and rejections. Two queries whatever the number of changes."""
    ids = [change.pk for change in changes]
    needed: dict[int, dict[int, int]] = {pk: {} for pk in ids}
    for change_id, role_id, count in ApprovalRequirement.objects.filter(
            change_id__in=ids, revision=F("change__revision")).values_list("change_id", "role_id", "count"):
        needed[change_id][role_id] = count
    given: Counter = Counter()
    rejected: Counter = Counter()
    for change_id, role_id, decision in Approval.objects.filter(
            change_id__in=ids, revision=F("change__revision")).values_list("change_id", "role_id", "decision"):
        if decision == Decision.APPROVE:
            given[(change_id, role_id)] += 1
        else:
            rejected[change_id] += 1
    return {pk: {"needed": sum(roles.values()),
                 "given": sum(min(given[(pk, role)], count) for role, count in roles.items()),
                 "rejected": rejected[pk]}
            for pk, roles in needed.items()}
