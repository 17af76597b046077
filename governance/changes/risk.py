"""Risk of a change, computed factor by factor so approvers see why, and the release strategy it calls for."""

from dataclasses import dataclass

from django.db.models import QuerySet

from governance.models.changes import (
    ChangeRequest,
    ChangeStatus,
    ChangeStatusChange,
    ChangeType,
    ReleaseStrategy,
    RiskLevel,
)
from releases.models import Deployment

LEVELS = [(75, RiskLevel.CRITICAL), (50, RiskLevel.HIGH), (25, RiskLevel.MEDIUM), (0, RiskLevel.LOW)]
CRITICALITY_POINTS = {1: 30, 2: 20, 3: 10, 4: 0}
TYPE_POINTS = {ChangeType.EMERGENCY: 15, ChangeType.NORMAL: 5, ChangeType.STANDARD: 0}
RADIUS_STEPS = [(1000, 20), (100, 15), (10, 10), (1, 5)]


@dataclass(frozen=True)
class RiskFacts:
    """What the assessment looks at, gathered by the change services."""

    highest_criticality: int | None  # 1 is most critical
    blast_radius: int  # CIs that transitively depend on the affected ones
    change_type: str
    production: bool
    recent_changes: int  # finished changes to the same CIs in the look-back period
    recent_failures: int  # of which failed or rolled back
    has_backout_plan: bool
    has_test_evidence: bool
    has_rollback_triggers: bool
    freeze_nearness_points: int = 0  # from the freeze calendar
    freeze_names: tuple[str, ...] | list[str] = ()  # freezes within 48 hours of the window
    freezes_inside: tuple[str, ...] | list[str] = ()  # freezes the window meets


@dataclass(frozen=True)
class Assessment:
    score: int
    level: str
    factors: list[dict]  # [{"factor", "detail", "points"}]
    recommended_strategy: str
    strategy_reason: str


def failed_among(recent: QuerySet[ChangeRequest]) -> set[int]:
    """The ids of the changes among `recent` that failed: moved to failed or rolled back, or one of whose
    deployments a release manager confirmed as the cause of an incident (it went out, then broke production)."""
    moved = ChangeStatusChange.objects.filter(change__in=recent,
                                              to_status__in=[ChangeStatus.FAILED, ChangeStatus.ROLLED_BACK])
    caused = recent.filter(number__in=Deployment.objects.filter(caused_failure=True).values("change_number"))
    return {*moved.values_list("change_id", flat=True), *caused.values_list("pk", flat=True)}


def assess(facts: RiskFacts) -> Assessment:
    factors: list[dict] = []

    def add(factor: str, detail: str, points: int) -> None:
        factors.append({"factor": factor, "detail": detail, "points": points})

    tier = facts.highest_criticality
    add("criticality", f"most critical affected CI is tier {tier}" if tier else "no CI affected",
        CRITICALITY_POINTS.get(tier, 0) if tier is not None else 0)
    radius_points = next((points for size, points in RADIUS_STEPS if facts.blast_radius >= size), 0)
    many = facts.blast_radius != 1
    add("blast radius", f"{facts.blast_radius} CI{'s' if many else ''} depend{'' if many else 's'} on the affected "
        "ones", radius_points)
    add("change type", ChangeType(facts.change_type).label, TYPE_POINTS[ChangeType(facts.change_type)])
    add("environment", "production" if facts.production else "not production", 15 if facts.production else 0)
    if facts.recent_changes:
        rate = facts.recent_failures / facts.recent_changes
        add("recent failures", f"{facts.recent_failures} of {facts.recent_changes} recent changes to these CIs "
            "failed or were rolled back", round(rate * 20))
    else:
        add("recent failures", "no recent changes to these CIs", 0)
    if facts.freeze_nearness_points:
        where = [*(["inside " + ", ".join(facts.freezes_inside)] if facts.freezes_inside else []),
                 *(["within 48 hours of " + ", ".join(facts.freeze_names)] if facts.freeze_names else [])]
        add("freeze nearness", "; ".join(where) or "within 48 hours of a freeze", facts.freeze_nearness_points)
    add("backout plan", "present" if facts.has_backout_plan else "missing", 0 if facts.has_backout_plan else 10)
    add("test evidence", "present" if facts.has_test_evidence else "missing", 0 if facts.has_test_evidence else 10)
    score = min(100, sum(f["points"] for f in factors))
    level = next(level for floor, level in LEVELS if score >= floor)
    strategy, reason = recommend_strategy(tier, level, facts.has_rollback_triggers)
    return Assessment(score=score, level=level, factors=factors, recommended_strategy=strategy,
                      strategy_reason=reason)


def recommend_strategy(tier: int | None, level: str, has_rollback_triggers: bool) -> tuple[str, str]:
    """Critical services want exposure in small steps; without automatic rollback, an instant switch back."""
    if tier == 1 or level in (RiskLevel.HIGH, RiskLevel.CRITICAL):
        if has_rollback_triggers:
            return ReleaseStrategy.CANARY, "critical or risky: expose a small share first, roll back on the triggers"
        return ReleaseStrategy.BLUE_GREEN, "critical or risky with no rollback triggers: keep the old version ready"
    if tier == 2:
        return ReleaseStrategy.BLUE_GREEN, "business critical: switch back at once if it goes wrong"
    return ReleaseStrategy.ROLLING, "low criticality: replace instances a few at a time"
