"""Who may ask the gate and report deployments, who may read its answers, and who ends a deployment by hand."""

from governance.changes.permissions import is_release_manager


def can_read_gate_log(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.view_deploymentcheck")


def can_end_deployment(user) -> bool:
    """Release managers: a deployment whose end never came holds its service in that environment until then."""
    return is_release_manager(user)


def can_report_deployments(user) -> bool:
    """Pipelines: the service accounts that ask the gate report what they then ran."""
    return user.has_perm("governance.add_deploymentcheck")
