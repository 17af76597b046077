"""Who may do what with changes. Segregation of duties lives here and in the approval service."""

from cmdb.models import Team
from governance.calendar.permissions import can_read_calendar
from governance.changes.workflow import MoverFacts
from governance.core.errors import Conflict, DomainError, Forbidden
from governance.models.changes import OPEN_STATES, ChangeRequest, StandardChangeTemplate
from governance.models.changes import ChangeStatus as S
from governance.roles import APPROVER_ROLES, holds_team_role, team_role_grants


def can_view_changes(user) -> bool:
    """People with a role that reads changes, and approvers who hold their role for a team only."""
    if not user.is_authenticated:
        return False
    return user.has_perm("governance.view_changerequest") or holds_team_role(user)


def can_raise_change(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.add_changerequest")


def is_release_manager(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.manage_changes")


def owning_teams(change: ChangeRequest) -> list[Team]:
    return list(Team.objects.filter(configuration_items__change_requests=change).distinct())


def approver_roles(user, change: ChangeRequest, teams: list[Team] | None = None) -> set[str]:
    """The approver roles `user` holds for this change: as a group member, or for a team that owns one of
    its CIs (a django-guardian permission on the team)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    held = set(user.groups.filter(name__in=APPROVER_ROLES).values_list("name", flat=True))
    owners = {team.pk for team in (owning_teams(change) if teams is None else teams)}
    return held | {role for team_id, role in team_role_grants(user) if team_id in owners}


def segregation_refusal(user, change: ChangeRequest) -> str | None:
    """Nobody approves a change they requested or will implement."""
    if user.pk == change.requester_id:
        return "You requested this change: someone else must approve it."
    if user.pk == change.implementer_id:
        return "You will implement this change: someone else must approve it."
    return None


def mover_facts(user, change: ChangeRequest) -> MoverFacts:
    """The parts `user` plays in `change`, as the lifecycle table names them."""
    return MoverFacts(is_requester=user.pk == change.requester_id, is_implementer=user.pk == change.implementer_id,
                      is_release_manager=is_release_manager(user))


# Once implementation starts, a change is a record of what was done.
def edit_refusal(user, change: ChangeRequest) -> DomainError | None:
    """Why `user` may not edit `change`, if not: its requester and release managers edit it until it is
    implemented, while it is open (what they may still change depends on its state)."""
    if change.status not in OPEN_STATES:
        return Conflict(f"A change in {S(change.status).label} can no longer be edited.")
    mover = mover_facts(user, change)
    if not (mover.is_requester or mover.is_release_manager):
        return Forbidden("Only the requester or a release manager may edit this change.")
    return None


def retrospective_refusal(user, change: ChangeRequest) -> str | None:
    """Why `user` may not record the retrospective review of an emergency change, if they may not."""
    refusal = segregation_refusal(user, change)
    if refusal or not (approver_roles(user, change) or is_release_manager(user)):
        return refusal or "A CAB member or release manager reviews emergency changes."
    return None


def can_approve_templates(user) -> bool:
    """CAB members and release managers (the change managers) approve standard change templates."""
    return user.is_authenticated and user.has_perm("governance.approve_standardchangetemplate")


def template_approval_refusal(user, template: StandardChangeTemplate) -> str | None:
    """Why `user` may not approve this version of `template`, if not: nobody approves a version they made."""
    if not can_approve_templates(user):
        return "A CAB member or a release manager approves standard change templates."
    if template.edited_by_id == user.pk:
        return (f"You made version {template.version} of the template {template.name}: "
                "someone else must approve it.")
    return None


def can_read_change_calendar(user) -> bool:
    """The calendar with the changes scheduled on it: for people who read both."""
    return can_read_calendar(user) and can_view_changes(user)
