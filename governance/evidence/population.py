"""The population: every deployment to a production environment in a period, built from the deployment side
(what pipelines reported under an allowing gate check, and what Changeboard's workers ran by a plan), each matched
to its change, the approvals given, the test evidence, the artifact and its digest.

Streamed in chunks: one query reads the next chunk of deployments (a server-side cursor), then one query each
fetches the chunk's changes, their approvals and the gate checks named, so a period of any size costs memory for
one chunk and a fixed number of queries per chunk."""

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from itertools import islice
from uuid import UUID

from django.db.models import Prefetch, QuerySet

from governance.evidence.period import Period
from governance.models import Approval, ChangeRequest, Decision, DeploymentCheck, EvidenceScope, GateDecision
from releases.models import Deployment

CHUNK_SIZE = 2000


@dataclass(frozen=True)
class PopulationRow:
    """One production deployment, matched to its change."""

    deployment: str
    kind: str
    service: str
    environment: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    artifact_version: str
    digest: str
    change_number: str
    change_type: str
    risk_level: str
    change_status: str
    requester: str
    implementer: str
    approvals: tuple[tuple[str, str, datetime], ...]
    test_evidence: str
    approved_digests: tuple[str, ...]
    check_id: str


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PopulationRow))


@dataclass(frozen=True)
class Matched:
    """A production deployment with what the population matched it to: its change (None when no change has its
    number), the approvals given to the change's current revision, and the allowing gate check (None when it has
    none). The exceptions read these; the population's rows are written from them."""

    deployment: Deployment
    change: ChangeRequest | None
    approvals: tuple[Approval, ...]
    check: DeploymentCheck | None


def production_deployments(period: Period) -> QuerySet[Deployment]:
    """The period's deployments to production environments over the CIs its scope names, in population order."""
    deployments = Deployment.objects.filter(environment__is_production=True, started_at__gte=period.start,
                                            started_at__lt=period.end)
    if period.scope == EvidenceScope.SOX:
        deployments = deployments.filter(service__sox_scoped=True)
    elif period.scope == EvidenceScope.PHI:
        deployments = deployments.filter(service__phi=True)
    return (deployments.select_related("service", "environment", "artifact", "reported_by")
            .order_by("started_at", "number"))


def matched(deployments: QuerySet[Deployment], *, chunk_size: int = CHUNK_SIZE) -> Iterator[Matched]:
    """Each deployment matched to its change, approvals and allowing check."""
    for chunk in matched_chunks(deployments, chunk_size=chunk_size):
        yield from chunk


def matched_chunks(deployments: QuerySet[Deployment], *, chunk_size: int = CHUNK_SIZE) -> Iterator[list[Matched]]:
    """The deployments matched a chunk at a time, for readers that look up more facts per chunk."""
    stream = deployments.iterator(chunk_size=chunk_size)
    while chunk := list(islice(stream, chunk_size)):
        yield list(_matched_chunk(chunk))


def _matched_chunk(chunk: list[Deployment]) -> Iterator[Matched]:
    numbers = {d.change_number for d in chunk if d.change_number}
    given = Approval.objects.filter(decision=Decision.APPROVE).select_related("approver", "role")
    changes = {c.number: c for c in ChangeRequest.objects.filter(number__in=numbers)
               .select_related("requester", "implementer")
               .prefetch_related(Prefetch("approvals", queryset=given, to_attr="given"))} if numbers else {}
    check_ids = {d.check_id for d in chunk if d.check_id}
    checks: dict[UUID | None, DeploymentCheck] = {
        c.pk: c for c in DeploymentCheck.objects.filter(pk__in=check_ids, decision=GateDecision.ALLOW)
    } if check_ids else {}
    for deployment in chunk:
        change = changes.get(deployment.change_number)
        approvals = tuple(a for a in change.given if a.revision == change.revision) if change else ()
        check = checks.get(deployment.check_id)
        yield Matched(deployment, change, approvals, check if check and covers(check, deployment) else None)


def covers(check: DeploymentCheck, deployment: Deployment) -> bool:
    """An allowing check allows what it was asked about only: this build of this service to this environment."""
    return (check.service_id == deployment.service_id and check.environment_id == deployment.environment_id
            and check.digest == deployment.artifact.digest)


def population(period: Period, *, chunk_size: int = CHUNK_SIZE) -> Iterator[PopulationRow]:
    """The period's population, ordered by (started_at, deployment), streamed."""
    return rows_of(matched(production_deployments(period), chunk_size=chunk_size))


def rows_of(records: Iterable[Matched]) -> Iterator[PopulationRow]:
    for record in records:
        yield population_row(record)


def population_row(record: Matched) -> PopulationRow:
    deployment, change = record.deployment, record.change
    return PopulationRow(
        deployment=deployment.number, kind=deployment.kind, service=deployment.service.name,
        environment=deployment.environment.name, started_at=deployment.started_at,
        finished_at=deployment.finished_at, status=deployment.status,
        artifact_version=deployment.artifact.version, digest=deployment.artifact.digest,
        change_number=change.number if change else deployment.change_number,
        change_type=change.change_type if change else "", risk_level=change.risk_level if change else "",
        change_status=change.status if change else "",
        requester=change.requester.get_username() if change else "",
        implementer=change.implementer.get_username() if change and change.implementer else "",
        approvals=tuple((a.approver.get_username(), a.role.name if a.role else "", a.created_at)
                        for a in record.approvals),
        test_evidence=change.test_evidence if change else "",
        approved_digests=tuple(change.pinned_digests) if change else (),
        check_id=str(record.check.pk) if record.check else "",
    )


def row_dict(row: PopulationRow) -> dict:
    """The row as JSON-ready values: ISO 8601 times, lists for tuples."""
    values = asdict(row)
    values["started_at"] = row.started_at.isoformat()
    values["finished_at"] = row.finished_at.isoformat() if row.finished_at else None
    values["approvals"] = [{"approver": who, "role": role, "decided_at": at.isoformat()}
                           for who, role, at in row.approvals]
    values["approved_digests"] = list(row.approved_digests)
    return values
