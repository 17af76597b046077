"""Which recent deployments probably caused an incident: each production deployment shortly before it is scored by
whether it deployed an affected CI or one they depend on (the CMDB's own impact walk, and how far), how long before
the incident it started, and how its health checks went. The score is the sum of its parts, shown as they are."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from cmdb.models import ConfigurationItem
from cmdb.selectors import impact_walk
from governance.audit.ledger import audit_record
from governance.core.actors import ActingUser
from governance.core.errors import Forbidden, InvalidInput
from governance.itsm.incident_permissions import can_decide_suspects
from governance.models.itsm import Incident, IncidentSuspect, SuspectStatus
from releases.models import Deployment, DeploymentStatus, StepKind, StepState

SAME_CI_POINTS = 40
# In the blast radius: points by the number of hops from the deployed service to the affected CI.
RADIUS_POINTS = {1: 25, 2: 18, 3: 12}
RADIUS_FAR_POINTS = 6
# Time since the deployment: full points when it started just before the incident, halving every HALF_LIFE.
TIME_POINTS = 30
HALF_LIFE = timedelta(hours=6)
ENDED_BADLY_POINTS = {DeploymentStatus.FAILED: 15, DeploymentStatus.ROLLED_BACK: 15}
FAILED_CHECK_POINTS = 5
FAILED_CHECKS_COUNTED = 3
CHECK_KINDS = (StepKind.PRE_CHECK, StepKind.SMOKE, StepKind.WATCH)
MAX_REASON = 1000


@dataclass(frozen=True)
class Scored:
    deployment: Deployment
    score: int
    parts: list[dict]


def suspects_rank(incident: Incident) -> list[IncidentSuspect]:
    """Score the production deployments of the window before the incident that touch its CIs, and keep them as its
    suspects, best first. Ranking again keeps what a release manager decided; a suspect no longer in the running
    goes unless it was decided."""
    scored = sorted(_scored(incident), key=lambda s: (-s.score, -s.deployment.started_at.timestamp(),
                                                      -s.deployment.pk))
    held = {s.deployment_id: s for s in IncidentSuspect.objects.select_for_update().filter(incident=incident)}
    ranked = []
    for rank, candidate in enumerate(scored, start=1):
        suspect = held.pop(candidate.deployment.pk, None)
        if suspect is None:
            suspect = IncidentSuspect(incident=incident, deployment=candidate.deployment)
        elif (suspect.score, suspect.parts, suspect.rank) == (candidate.score, candidate.parts, rank):
            ranked.append(suspect)
            continue
        suspect.change_number = candidate.deployment.change_number
        suspect.score, suspect.parts, suspect.rank = candidate.score, candidate.parts, rank
        suspect.save()
        ranked.append(suspect)
    gone = [s for s in held.values() if s.status == SuspectStatus.SUSPECTED]
    IncidentSuspect.objects.filter(pk__in=[s.pk for s in gone]).delete()
    for rank, suspect in enumerate(sorted((s for s in held.values() if s not in gone), key=lambda s: -s.score),
                                   start=len(ranked) + 1):
        if suspect.rank != rank:
            suspect.rank = rank
            suspect.save(update_fields=["rank"])
        ranked.append(suspect)
    return ranked


def _scored(incident: Incident) -> list[Scored]:
    affected = set(incident.affected_cis.values_list("pk", flat=True))
    if not affected:
        return []
    since = incident.opened_at - timedelta(hours=settings.ITSM_SUSPECT_WINDOW_HOURS)
    deployments = list(
        Deployment.objects.filter(environment__is_production=True, started_at__lte=incident.opened_at,
                                  started_at__gte=since)
        .exclude(status=DeploymentStatus.QUEUED)
        .select_related("service")
        .annotate(failed_checks=Count("steps", filter=Q(steps__kind__in=CHECK_KINDS,
                                                         steps__state=StepState.FAILED))))
    distances = {service_id: _distance(service_id, affected) for service_id in {d.service_id for d in deployments}}
    on_paths = {ci_id for found in distances.values() if found for ci_id in found[1]}
    names = dict(ConfigurationItem.objects.filter(pk__in=on_paths).values_list("pk", "name"))
    return [Scored(deployment=d, score=sum(p["points"] for p in parts), parts=parts)
            for d in deployments
            if (parts := _parts(d, distances[d.service_id], names, incident.opened_at)) is not None]


def _distance(service_id: int, affected: set[int]) -> tuple[int, list[int]] | None:
    """Hops from the deployed service to the nearest affected CI that depends on it (0: the service itself), with
    the path; None when no affected CI is in its blast radius."""
    if service_id in affected:
        return 0, [service_id]
    for entry in impact_walk(service_id, direction="dependents"):  # nearest first
        if entry.ci_id in affected:
            return entry.depth, entry.path
    return None


def _parts(deployment, distance: tuple[int, list[int]] | None, names: dict[int, str],
           opened_at: datetime) -> list[dict] | None:
    if distance is None:
        return None
    hops, path = distance
    if hops == 0:
        parts = [_part("same CI", f"deployed {deployment.service.name}, an affected CI", SAME_CI_POINTS)]
    else:
        chain = " → ".join(names.get(ci_id, "?") for ci_id in reversed(path))
        parts = [_part("blast radius", f"{hops} hop{'s' if hops > 1 else ''} from {deployment.service.name}: {chain} "
                       "(depends on)", RADIUS_POINTS.get(hops, RADIUS_FAR_POINTS))]
    before = opened_at - deployment.started_at
    parts.append(_part("time since deployment", f"started {_duration(before)} before the incident opened",
                       round(TIME_POINTS * 0.5 ** (before / HALF_LIFE))))
    ended = ENDED_BADLY_POINTS.get(deployment.status, 0)
    failed = deployment.failed_checks
    checks = FAILED_CHECK_POINTS * min(failed, FAILED_CHECKS_COUNTED)
    health = [DeploymentStatus(deployment.status).label.lower()] if ended else []
    health += [f"{failed} failed health check{'s' if failed > 1 else ''}"] if failed else []
    parts.append(_part("health", ", ".join(health) or "no failed health check", ended + checks))
    return parts


def _part(factor: str, detail: str, points: int) -> dict:
    return {"factor": factor, "detail": detail, "points": points}


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def suspect_decide(*, actor: ActingUser, suspect: IncidentSuspect, status: str, reason: str) -> IncidentSuspect:
    """A release manager confirms a suspect as the incident's cause (its deployment is marked as having caused a
    failure, which the risk of later changes to its service counts) or dismisses it. Deciding again corrects the
    decision: the deployment stays marked while any incident's confirmed suspect names it."""
    if not can_decide_suspects(actor):
        raise Forbidden("Only a release manager confirms or dismisses a suspect.")
    if status not in (SuspectStatus.CONFIRMED, SuspectStatus.DISMISSED):
        raise InvalidInput("Give confirmed or dismissed.", field="status", code="invalid_choice")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why.", field="reason", code="required")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"At most {MAX_REASON} characters.", field="reason", code="max_length")
    with transaction.atomic():
        suspect = (IncidentSuspect.objects.select_for_update().select_related("incident", "deployment")
                   .get(pk=suspect.pk))
        suspect.status, suspect.reason = status, reason
        suspect.decided_by, suspect.decided_at = actor, timezone.now()
        suspect.save(update_fields=["status", "reason", "decided_by", "decided_at"])
        caused = IncidentSuspect.objects.filter(deployment=suspect.deployment_id,
                                                status=SuspectStatus.CONFIRMED).exists()
        Deployment.objects.filter(pk=suspect.deployment_id).exclude(caused_failure=caused).update(
            caused_failure=caused)
        audit_record(f"incident_suspect_{status}", obj=suspect, context={
            "incident": str(suspect.incident), "deployment": suspect.deployment.number,
            "change": suspect.change_number, "reason": reason})
    return suspect


def suspects_of_deployment(deployment: Deployment):
    """The incidents a deployment is suspected of, with their scores: for the deployment page."""
    return (IncidentSuspect.objects.filter(deployment=deployment).select_related("incident", "decided_by")
            .order_by("-incident__opened_at", "rank"))


def suspects_of_change(number: str):
    """The suspects among a change's deployments: for the change page."""
    return (IncidentSuspect.objects.filter(change_number=number)
            .select_related("incident", "deployment", "decided_by").order_by("-incident__opened_at", "rank"))

