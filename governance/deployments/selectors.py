"""Reads the deployment pages and the API share: their queries are decided here, once."""

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from releases.models import (
    HOLDING_STATUSES,
    Deployment,
    DeploymentPlan,
    DeploymentStatus,
    HealthCheck,
    PlanWave,
    RolloutStep,
)


def deployments_listed() -> QuerySet[Deployment]:
    """Every deployment, newest first, with what a list shows of it in the same query."""
    return Deployment.objects.select_related("service", "environment", "artifact", "plan")


def deployment_detailed() -> QuerySet[Deployment]:
    """Deployments with their steps, plan, waves and checks: four queries whatever their number."""
    return deployments_listed().select_related("previous_artifact", "reported_by", "aborted_by").prefetch_related(
        Prefetch("steps", queryset=RolloutStep.objects.order_by("sequence")),
        Prefetch("plan__waves", queryset=PlanWave.objects.order_by("position")),
        Prefetch("plan__health_checks", queryset=HealthCheck.objects.order_by("phase", "name")),
    )


def deployments_queued() -> QuerySet[Deployment]:
    """The deployments waiting for their service and environment, in the order they start (first queued first)."""
    return deployments_listed().filter(status=DeploymentStatus.QUEUED).order_by("started_at", "pk")


def plans_for(*, service_id: int | None = None, environment_id: int | None = None) -> QuerySet[DeploymentPlan]:
    """The plans a start may pick, by service and environment when given."""
    plans = DeploymentPlan.objects.select_related("service", "environment").prefetch_related(
        Prefetch("waves", queryset=PlanWave.objects.order_by("position")))
    if service_id is not None:
        plans = plans.filter(service_id=service_id)
    if environment_id is not None:
        plans = plans.filter(environment_id=environment_id)
    return plans


# A deployment in one of these runs (or will) by its plan's waves as they were when it started.
PLAN_IN_USE_STATUSES = (DeploymentStatus.QUEUED, *HOLDING_STATUSES)


def plans_listed() -> QuerySet[DeploymentPlan]:
    """Plans by service and environment, with their waves, checks, migration and whether a deployment runs (or
    waits to run) by them: three queries whatever their number."""
    running = Deployment.objects.filter(plan=OuterRef("pk"), status__in=PLAN_IN_USE_STATUSES)
    return (DeploymentPlan.objects.select_related("service", "environment", "migration")
            .annotate(in_use=Exists(running))
            .prefetch_related(Prefetch("waves", queryset=PlanWave.objects.order_by("position")),
                              Prefetch("health_checks", queryset=HealthCheck.objects.order_by("phase", "name")))
            .order_by("service__name", "environment__position", "pk"))
