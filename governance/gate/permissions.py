"""Who may read the gate's answers."""


def can_read_gate_log(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.view_deploymentcheck")
