"""The completeness reconciliation: how the population was produced, as counts from each side (the gate's
allowing checks, the deployments pipelines reported, those Changeboard ran, the approved production changes), and
every record on one side with no partner on the other."""

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, QuerySet

from governance.evidence.period import Period
from governance.evidence.population import production_deployments
from governance.models import ChangeRequest, DeploymentCheck, EvidenceScope, GateDecision
from governance.models.changes import ChangeStatus
from releases.models import Deployment, DeploymentKind


@dataclass(frozen=True)
class Reconciliation:
    counts: dict[str, int]
    unpaired: list[dict] = field(default_factory=list)   # each {"side", "record", "reason"}


def allowing_checks(period: Period) -> QuerySet[DeploymentCheck]:
    """The gate's allowing answers about production in the period, over the scope's CIs."""
    checks = DeploymentCheck.objects.filter(decision=GateDecision.ALLOW, environment__is_production=True,
                                            asked_at__gte=period.start, asked_at__lt=period.end)
    return _scoped(checks, "service", period.scope)


def approved_production_changes(period: Period) -> QuerySet[ChangeRequest]:
    """Changes approved for a production environment whose window opens in the period, over the scope's CIs."""
    changes = ChangeRequest.objects.filter(environment__is_production=True, approved_at__isnull=False,
                                           planned_start__gte=period.start, planned_start__lt=period.end).exclude(
        status__in=(ChangeStatus.REJECTED, ChangeStatus.CANCELLED))
    if period.scope == EvidenceScope.ALL:
        return changes
    return changes.filter(pk__in=_scoped(ChangeRequest.objects.all(), "affected_cis", period.scope).values("pk"))


def _scoped(rows: QuerySet, ci: str, scope: str) -> QuerySet:
    if scope == EvidenceScope.SOX:
        return rows.filter(**{f"{ci}__sox_scoped": True})
    if scope == EvidenceScope.PHI:
        return rows.filter(**{f"{ci}__phi": True})
    return rows


def reconcile(period: Period) -> Reconciliation:
    """The counts of each side and every unpaired record, ordered by side then record."""
    deployments = production_deployments(period).order_by()
    checks, changes = allowing_checks(period), approved_production_changes(period)
    counts = {
        "allowing_checks": checks.count(),
        "reported_deployments": deployments.filter(kind=DeploymentKind.REPORTED).count(),
        "run_deployments": deployments.filter(kind=DeploymentKind.RUN).count(),
        "changes": changes.count(),
    }
    counts["population"] = counts["reported_deployments"] + counts["run_deployments"]
    unpaired = []
    for check_id, service, asked_at in (checks.filter(~Exists(Deployment.objects.filter(check_id=OuterRef("pk"))))
                                        .order_by("asked_at", "pk").values_list("pk", "service__name", "asked_at")):
        unpaired.append({"side": "gate_check", "record": str(check_id),
                         "reason": f"The gate allowed {service} into production at {asked_at.isoformat()} and no "
                                   "deployment was reported under that check."})
    # As population.covers has it: the check allowed this build of this service to this environment.
    allowing = DeploymentCheck.objects.filter(pk=OuterRef("check_id"), decision=GateDecision.ALLOW,
                                              service=OuterRef("service"), environment=OuterRef("environment"),
                                              digest=OuterRef("artifact__digest"))
    known = ChangeRequest.objects.filter(number=OuterRef("change_number"))
    for number, kind, has_check, has_change in (
            deployments.annotate(has_check=Exists(allowing), has_change=Exists(known))
            .filter(Q(kind=DeploymentKind.REPORTED, has_check=False) | Q(has_change=False))
            .order_by("number").values_list("number", "kind", "has_check", "has_change")):
        lacks = (("an allowing gate check", kind == DeploymentKind.REPORTED and not has_check),
                 ("a change", not has_change))
        missing = [what for what, lacking in lacks if lacking]
        unpaired.append({"side": "deployment", "record": number,
                         "reason": f"{number} reached production with no {' and no '.join(missing)}."})
    deployed = Deployment.objects.filter(change_number=OuterRef("number"), environment__is_production=True)
    for number in changes.filter(~Exists(deployed)).order_by("number").values_list("number", flat=True):
        unpaired.append({"side": "change", "record": number,
                         "reason": f"{number} was approved for production in the period and nothing was deployed "
                                   "under it."})
    return Reconciliation(counts=counts, unpaired=unpaired)
