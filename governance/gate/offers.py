"""The gate's offers on the release pages (governance.core.offers)."""

from django.urls import reverse

from governance.core.offers import register_offer
from governance.gate.permissions import can_end_deployment


def _gate_log(user) -> str | None:
    return reverse("gate:gate_log") if user.has_perm("governance.view_deploymentcheck") else None


def _end_deployment(user, number: str) -> str | None:
    return reverse("gate:deployment_abandon", args=[number]) if can_end_deployment(user) else None


register_offer("gate_log", _gate_log)
register_offer("may_end_deployments", can_end_deployment)
register_offer("end_deployment", _end_deployment)
