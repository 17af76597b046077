"""Who may read and run the deployments Changeboard runs; used by the pages, the API and the templates."""

from governance.changes.permissions import can_view_changes, is_release_manager
from releases.permissions import can_view_releases


def can_read_deployments(user) -> bool:
    """Anyone whose Changeboard role reads releases or changes reads deployments, their steps and their log."""
    return user.is_authenticated and (can_view_releases(user) or can_view_changes(user))


def can_run_deployments(user) -> bool:
    """Starts, pauses, resumes, aborts and approvals of a wave are a release manager's (the services check again)."""
    return is_release_manager(user)


def can_edit_plans(user) -> bool:
    """Plans say how a service is deployed and with which commands: release managers and administrators make and
    edit them (the plan services check again). Everyone else, auditors included, reads them on a deployment."""
    return is_release_manager(user)
