"""Reads of artifacts shared by the release pages (and the CI page's builds panel); each fixes its queries."""

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from cmdb.models import ConfigurationItem, Environment
from releases.models import Artifact, Deployment, DeploymentStatus, GatePolicy, Promotion, scan_kind_labels


@dataclass(frozen=True)
class Step:
    """One environment of the chain as one artifact sees it: passed (and when), next, or not yet."""

    environment: Environment
    policy: GatePolicy
    promotion: Promotion | None
    is_next: bool

    @property
    def passed(self) -> bool:
        return self.promotion is not None

    @property
    def state(self) -> str:
        return "passed" if self.passed else "next" if self.is_next else "pending"

    @property
    def required_scan_labels(self) -> list[str]:
        return scan_kind_labels(self.policy.required_scans)


def artifacts() -> QuerySet[Artifact]:
    """Artifacts with their service, signer, promotions (in chain order) and scans: four queries for any page."""
    promotions = Promotion.objects.select_related("environment").order_by("environment__position")
    return (Artifact.objects.select_related("service__owner_team", "signed_by__team", "created_by")
            .prefetch_related(Prefetch("promotions", queryset=promotions, to_attr="passed"), "scans"))


def chain() -> list[Environment]:
    """The promotion chain in order, each environment with its own gate policy if it has one."""
    return list(Environment.objects.select_related("gate_policy").order_by("position"))


def promotion_path(artifact: Artifact, environments: list[Environment]) -> list[Step]:
    """Every environment of `environments` (the chain, in order) for an artifact loaded by `artifacts()`, without
    a query. A step is next when the one before it was passed: promotion goes one environment at a time, as
    services.artifact_promote and the gate hold it."""
    # `passed` is the to_attr of artifacts()'s prefetch, which the stubs cannot see.
    passed = {promotion.environment_id: promotion for promotion in artifact.passed}  # type: ignore[attr-defined]
    return [Step(environment=env, policy=GatePolicy.for_environment(env), promotion=passed.get(env.pk),
                 is_next=env.pk not in passed and (n == 0 or environments[n - 1].pk in passed))
            for n, env in enumerate(environments)]


def artifact_deployments(artifact: Artifact) -> QuerySet[Deployment]:
    return artifact.deployments.select_related("environment").order_by("-started_at")


def service_artifacts(service: ConfigurationItem) -> QuerySet[Artifact]:
    return artifacts().filter(service=service)


def deployment_of_check(check_id) -> Deployment | None:
    """The deployment the gate's check `check_id` started, if any (a check starts one at most)."""
    return Deployment.objects.select_related("service", "environment", "artifact").filter(check_id=check_id).first()


def live_artifact(service: ConfigurationItem, environment: Environment) -> Artifact | None:
    """The build running in `environment` now: that of the last deployment there that succeeded."""
    last = (Deployment.objects.filter(service=service, environment=environment, status=DeploymentStatus.SUCCEEDED)
            .select_related("artifact").order_by("-started_at").first())
    return last.artifact if last is not None else None


def rollback_rehearsed(artifact: Artifact) -> bool:
    """Whether the build's rollback was rehearsed: a deployment of it rolled back in a pre-production environment."""
    return Deployment.objects.filter(artifact=artifact, environment__is_production=False,
                                     status=DeploymentStatus.ROLLED_BACK).exists()


def queued_next(service_id: int, environment_id: int) -> Deployment | None:
    """The deployment waiting longest for this service in this environment."""
    return (Deployment.objects.filter(service_id=service_id, environment_id=environment_id,
                                      status=DeploymentStatus.QUEUED).order_by("started_at", "pk").first())
