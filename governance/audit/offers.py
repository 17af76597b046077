"""The ledger's offers on other areas' pages (governance.core.offers)."""

from django.urls import reverse

from governance.core.offers import register_offer


def _history(user, object_type: str, object_id) -> str:
    """The object's timeline; the history view itself decides who may read it."""
    return reverse("audit_object_history", args=[object_type, object_id])


register_offer("history", _history)
