"""Reads of the gate's answers shared by the pages; each fixes its number of queries."""

from django.db.models import QuerySet

from governance.models.gate import DeploymentCheck


def deployment_checks() -> QuerySet[DeploymentCheck]:
    """Newest first, with everything a log row names loaded in the same query."""
    return (DeploymentCheck.objects.select_related("change", "service", "environment", "artifact", "asked_by")
            .order_by("-asked_at"))
