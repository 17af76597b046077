"""Who reads incidents and their suspects, and who decides a suspect; used by the pages, the API and the services.
The ITSM area sits below the changes area, so the rules are read from the roles' permissions themselves."""

from governance.roles import holds_team_role


def can_read_incidents(user) -> bool:
    """Incidents and their suspects are read by those who read changes: a role that reads them, or an approver's
    role held for a team only."""
    return user.is_authenticated and user.is_active and (
        user.has_perm("governance.view_changerequest") or holds_team_role(user))


def can_decide_suspects(user) -> bool:
    """A release manager confirms or dismisses a suspect (the role that manages changes)."""
    return user.is_authenticated and user.is_active and user.has_perm("governance.manage_changes")
