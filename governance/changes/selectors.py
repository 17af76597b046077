"""Reads of changes shared by the queue, the change page, the API and exports."""

from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from guardian.models import UserObjectPermission

from governance.changes.permissions import approver_roles, owning_teams
from governance.changes.services import outstanding_approvals
from governance.models.changes import Approval, ApprovalRequirement, ChangeRequest, Decision
from governance.models.changes import ChangeStatus as S
from governance.roles import APPROVER_ROLES, team_role_permission

ACTIVE = [S.SUBMITTED, S.ASSESSED, S.CAB_REVIEW, S.APPROVED, S.SCHEDULED, S.IMPLEMENTING]


def change_requests() -> QuerySet[ChangeRequest]:
    return ChangeRequest.objects.select_related("requester", "implementer", "environment", "template")


def change_requests_visible_to(user) -> QuerySet[ChangeRequest]:
    if not user.is_authenticated or not user.has_perm("governance.view_changerequest"):
        return ChangeRequest.objects.none()
    return change_requests()


def awaiting_approval_by(user) -> Q:
    """Changes in review whose current revision still lacks approvals from a role `user` holds (globally or
    for a team owning one of its CIs), that `user` has not decided on, and did not request or implement."""
    global_roles = list(user.groups.filter(name__in=APPROVER_ROLES).values_list("name", flat=True))
    condition = Q(Exists(_lacking(global_roles)))
    for team_id, role in _team_role_grants(user):
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


def _team_role_grants(user) -> list[tuple[int, str]]:
    codenames = {team_role_permission(role).split(".", 1)[1]: role for role in APPROVER_ROLES}
    grants = UserObjectPermission.objects.filter(user=user, permission__codename__in=codenames,
                                                 content_type__app_label="cmdb", content_type__model="team")
    return [(int(g.object_pk), codenames[g.permission.codename]) for g in grants.select_related("permission")]


def cab_queue(user) -> QuerySet[ChangeRequest]:
    """Open changes, the ones awaiting this user's approval first, then by window."""
    mine = awaiting_approval_by(user)
    return (change_requests_visible_to(user).filter(status__in=ACTIVE)
            .annotate(awaits_me=Case(When(mine, then=Value(1)), default=Value(0), output_field=IntegerField()))
            .order_by("-awaits_me", "planned_start", "pk").distinct())


def change_conflicts(change: ChangeRequest) -> QuerySet[ChangeRequest]:
    """Other active changes whose window overlaps this one and that touch its CIs or their blast radius,
    or whose blast radius holds this change's CIs."""
    if change.planned_start is None or change.planned_end is None:
        return ChangeRequest.objects.none()
    own = list(change.affected_cis.values_list("pk", flat=True))
    return (change_requests().filter(status__in=ACTIVE, planned_start__lt=change.planned_end,
                                     planned_end__gt=change.planned_start)
            .exclude(pk=change.pk)
            .filter(Q(affected_cis__in=change.impacted_ci_ids or own) | Q(impacted_ci_ids__overlap=own))
            .distinct())


def approval_checklist(change: ChangeRequest) -> list[dict]:
    """Who still has to approve: each role of the current revision, approvals given and still needed."""
    approvals = list(Approval.objects.filter(change=change, revision=change.revision).select_related(
        "approver", "role"))
    requirements = {r.role.name: r for r in ApprovalRequirement.objects.filter(
        change=change, revision=change.revision).select_related("role")}
    rows = []
    for item in outstanding_approvals(change):
        rows.append({
            "role": item.role, "needed": item.needed, "given": item.given, "done": item.given >= item.needed,
            "policies": requirements[item.role].policies,
            "approvals": [a for a in approvals if a.role and a.role.name == item.role],
        })
    return rows


def can_decide(user, change: ChangeRequest) -> bool:
    """Whether the approve and reject buttons are offered to `user` (the service decides for real)."""
    if change.status != S.CAB_REVIEW or user.pk in (change.requester_id, change.implementer_id):
        return False
    if Approval.objects.filter(change=change, revision=change.revision, approver=user).exists():
        return False
    needed = {o.role for o in outstanding_approvals(change) if o.given < o.needed}
    return bool(needed & approver_roles(user, change, owning_teams(change)))


def retrospectives_overdue() -> QuerySet[ChangeRequest]:
    return change_requests().filter(change_type="emergency", approved_at__isnull=False,
                                    retrospective_done_at__isnull=True, retrospective_due__lt=timezone.now())
