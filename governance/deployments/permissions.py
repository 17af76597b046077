"""Who may read and run the deployments Changeboard runs; used by the pages, the API and the templates."""

from governance.changes.permissions import can_view_changes, is_release_manager
from releases.permissions import can_view_releases


def can_read_deployments(user) -> bool:
    """Anyone whose Changeboard role reads releases or changes reads deployments, their steps and their log."""
    return user.is_authenticated and (can_view_releases(user) or can_view_changes(user))


def can_run_deployments(user) -> bool:
    """Starts, pauses, resumes, aborts and approvals of a wave are a release manager's (the services check again)."""
    return is_release_manager(user)
