"""Who may read the audit ledger."""

from django.apps import apps


def can_read_ledger(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.view_auditevent")


def can_export_ledger(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.export_auditevent")


def can_create_checkpoint(user) -> bool:
    return user.is_authenticated and user.has_perm("governance.add_auditcheckpoint")


def can_read_history(user, object_type: str) -> bool:
    """An object's history is open to ledger readers and to whoever may view objects of its kind."""
    if can_read_ledger(user):
        return True
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return False
    return user.is_authenticated and user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
