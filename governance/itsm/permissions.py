"""Who sees the ITSM connectors' status and who sends a failed update again; used by the page and the service."""

from governance.roles import Role


def is_administrator(user) -> bool:
    return user.is_authenticated and user.is_active and (
        user.is_superuser or user.groups.filter(name=Role.ADMIN).exists())


def can_read_connectors(user) -> bool:
    """Release managers and administrators watch the connectors: last sync, backlog, failures."""
    return user.is_authenticated and (user.has_perm("governance.manage_changes") or is_administrator(user))


def can_retry_outbox(user) -> bool:
    """Only administrators send a failed update again (it may be failing for a reason in the remote's setup)."""
    return is_administrator(user)
