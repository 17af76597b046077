"""Questions the calendar answers: which freezes and lockdowns cover this scope at this time, and when."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Prefetch, QuerySet
from django.db.models.expressions import RawSQL

from cmdb.models import ConfigurationItem
from governance.calendar.permissions import can_read_calendar
from governance.calendar.recurrence import next_occurrence
from governance.core.secrets import secret_digest
from governance.models.calendar import CalendarFeed, FreezeWindow, Lockdown, MaintenanceWindow, Occurrence

SCOPE_PREFETCH = ("environments", "cis")
SCOPE_FIELDS = ("everything", "environments", "cis", "ci_types", "tags", "max_criticality", "sox_scoped", "phi", "pci")


def names_a_scope(scope: Mapping) -> bool:
    """Whether a freeze, maintenance window or lockdown scope names anything: one that names nothing covers
    nothing, and is refused rather than saved as a silent no-op."""
    return any(scope.get(name) for name in SCOPE_FIELDS)


def covers(scope, ci: ConfigurationItem | None, environment_id: int | None) -> bool:
    """Whether a freeze, window or lockdown covers this CI in this environment: everything, or every condition
    it sets holds. With no CI given, only scopes without CI conditions cover."""
    if scope.everything:
        return True
    environments = {e.pk for e in scope.environments.all()}
    if environments and environment_id not in environments:
        return False
    cis = {c.pk for c in scope.cis.all()}
    ci_conditions = cis or scope.ci_types or scope.tags or scope.max_criticality or scope.sox_scoped \
        or scope.phi or scope.pci
    if ci is None:
        return bool(environments) and not ci_conditions
    return ((not cis or ci.pk in cis)
            and (not scope.ci_types or ci.ci_type in scope.ci_types)
            and (not scope.tags or bool(set(ci.tags) & set(scope.tags)))
            and (scope.max_criticality is None or ci.criticality <= scope.max_criticality)
            and (not scope.sox_scoped or ci.sox_scoped)
            and (not scope.phi or ci.phi)
            and (not scope.pci or ci.pci)
            and bool(environments or ci_conditions))


def covers_any(scope, cis: list[ConfigurationItem], environment_id: int | None) -> bool:
    return any(covers(scope, ci, environment_id) for ci in cis) or (not cis and covers(scope, None, environment_id))


# covers_any() in SQL, over the scope row `{s}` of a freeze, maintenance window or lockdown, so the database
# picks the covering rows. Loading every scope that meets a time range to judge it in Python cost 13 ms for
# "what freezes and lockdowns cover this CI now" and 160-220 ms for a change's next five slots with 1,000
# freezes; now 3 ms and 11-27 ms (tests/bench/bench_calendar.py). The same conditions built with the ORM took
# 2.5 ms to compile alone. The CIs' attributes are read from the database.
# tests/governance/calendar/test_calendar_enforcement.py holds the two to the same answers.
_SCOPE_CI_CONDITIONS = """(EXISTS (SELECT FROM {items} i WHERE i.{owner} = {s}.id) OR cardinality({s}.ci_types) > 0
    OR cardinality({s}.tags) > 0 OR coalesce({s}.max_criticality, 0) <> 0 OR {s}.sox_scoped OR {s}.phi OR {s}.pci)"""
_COVERS_ANY = """({s}.everything OR (
  (NOT EXISTS (SELECT FROM {envs} e WHERE e.{owner} = {s}.id)
   OR EXISTS (SELECT FROM {envs} e WHERE e.{owner} = {s}.id AND e.environment_id = %s))
  AND CASE WHEN cardinality(%s::bigint[]) = 0
    THEN EXISTS (SELECT FROM {envs} e WHERE e.{owner} = {s}.id) AND NOT {ci_conditions}
    ELSE EXISTS (SELECT FROM cmdb_configurationitem ci WHERE ci.id = ANY(%s::bigint[])
        AND (NOT EXISTS (SELECT FROM {items} i WHERE i.{owner} = {s}.id)
             OR EXISTS (SELECT FROM {items} i WHERE i.{owner} = {s}.id AND i.configurationitem_id = ci.id))
        AND (cardinality({s}.ci_types) = 0 OR ci.ci_type = ANY({s}.ci_types))
        AND (cardinality({s}.tags) = 0 OR ci.tags && {s}.tags)
        AND ({s}.max_criticality IS NULL OR ci.criticality <= {s}.max_criticality)
        AND (NOT {s}.sox_scoped OR ci.sox_scoped) AND (NOT {s}.phi OR ci.phi) AND (NOT {s}.pci OR ci.pci))
      AND (EXISTS (SELECT FROM {envs} e WHERE e.{owner} = {s}.id) OR {ci_conditions})
  END))"""


def covers_any_template(model, alias: str | None = None) -> str:
    """covers_any() as SQL over `model`'s table (FreezeWindow, MaintenanceWindow or Lockdown) joined as `alias`,
    with three %s placeholders: the environment id, then the CI ids twice."""
    names = {"s": alias or model._meta.db_table, "owner": model.environments.field.m2m_column_name(),
             "envs": model.environments.through._meta.db_table, "items": model.cis.through._meta.db_table}
    return _COVERS_ANY.format(**names, ci_conditions=_SCOPE_CI_CONDITIONS.format(**names))


def covers_any_sql(model, cis: list[ConfigurationItem], environment_id: int | None,
                   alias: str | None = None) -> RawSQL:
    """A condition on `model`, its table joined as `alias`: true where covers_any(row, cis, environment_id) would
    be."""
    ids = [ci.pk for ci in cis]
    return RawSQL(covers_any_template(model, alias), [environment_id, ids, ids],  # noqa: S611 (names from model meta)
                  output_field=BooleanField())


@dataclass(frozen=True)
class FreezeHit:
    freeze: FreezeWindow
    starts: datetime
    ends: datetime


# What a caller that judges scopes in Python loads beside occurrences (prefetch_related(*OCCURRENCE_SCOPE)).
OCCURRENCE_SCOPE = tuple(f"{owner}__{name}" for owner in ("freeze", "maintenance") for name in SCOPE_PREFETCH)


def freeze_occurrences_between(start: datetime, end: datetime) -> QuerySet[Occurrence]:
    """Occurrences of active freezes overlapping [start, end), with their freezes (GiST-indexed)."""
    return (Occurrence.objects.filter(freeze__active=True, period__overlap=(start, end))
            .select_related("freeze", "freeze__extra_approval_role").order_by("period"))


def covering(rows: QuerySet, model, cis: list[ConfigurationItem] | None, environment_id: int | None) -> QuerySet:
    """Those of these lockdowns, or occurrences of freezes or maintenance windows (`model`, joined under its table
    name), whose scope covers any of `cis` in the environment (with no CI, the whole environment); all of them
    when neither is given."""
    if cis is None and environment_id is None:
        return rows
    return rows.filter(covers_any_sql(model, cis or [], environment_id))


def freezes_covering(cis: list[ConfigurationItem], environment_id: int | None, start: datetime,
                     end: datetime) -> list[FreezeHit]:
    """Freeze occurrences overlapping [start, end) whose scope covers any of these CIs in that environment."""
    occurrences = covering(freeze_occurrences_between(start, end), FreezeWindow, cis, environment_id)
    return [FreezeHit(o.freeze, o.period.lower, o.period.upper) for o in occurrences]


def upcoming_occurrences(at: datetime, count: int = 5) -> Prefetch:
    """For a list of freezes or maintenance windows: each one's next `count` stored occurrences (one under way
    first) as `upcoming`, read for the whole list in one query."""
    return Prefetch("occurrences", to_attr="upcoming",
                    queryset=Occurrence.objects.filter(period__endswith__gt=at).order_by("period")[:count])


def freezes_due(at: datetime, within: timedelta, count: int) -> QuerySet[FreezeWindow]:
    """Active freezes under way at `at` or starting within `within` of it, each with its next `count` occurrences
    as `upcoming`; only those freezes' occurrences are read."""
    due = Occurrence.objects.filter(freeze=OuterRef("pk"), period__endswith__gt=at, period__startswith__lt=at + within)
    return FreezeWindow.objects.filter(Exists(due), active=True).prefetch_related(upcoming_occurrences(at, count))


def maintenance_occurrences_between(start: datetime, end: datetime) -> QuerySet[Occurrence]:
    """Occurrences of active maintenance windows overlapping [start, end), with their windows."""
    return (Occurrence.objects.filter(maintenance__active=True, period__overlap=(start, end))
            .select_related("maintenance").order_by("period"))


def lockdowns_active(at: datetime) -> QuerySet[Lockdown]:
    return (Lockdown.objects.filter(Lockdown.in_force_at(at))
            .select_related("declared_by", "lifted_by").prefetch_related(*SCOPE_PREFETCH))


def lockdowns_with_state(lockdowns: QuerySet[Lockdown], at: datetime) -> QuerySet[Lockdown]:
    """These lockdowns, each with `in_force` at `at`."""
    return lockdowns.annotate(in_force=ExpressionWrapper(Lockdown.in_force_at(at), output_field=BooleanField()))


def lockdowns_covering(cis: list[ConfigurationItem], environment_id: int | None, at: datetime) -> list[Lockdown]:
    return list(covering(lockdowns_active(at).prefetch_related(None), Lockdown, cis, environment_id))


def maintenance_windows_for(change_type: str, cis: list[ConfigurationItem],
                            environment_id: int | None) -> list[MaintenanceWindow]:
    """The active maintenance windows governing changes of this type to these CIs."""
    windows = MaintenanceWindow.objects.filter(active=True).filter(covers_any_sql(MaintenanceWindow, cis,
                                                                                 environment_id))
    return [w for w in windows if change_type in (w.change_types or ["normal"])]


def inside_maintenance(windows: list[MaintenanceWindow], start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies within one occurrence of one of these windows."""
    return Occurrence.objects.filter(maintenance__in=windows, period__contains=(start, end)).exists() if windows \
        else True


def describe_next(window, after: datetime) -> str:
    upcoming = next_occurrence(window, after)
    if upcoming is None:
        return f"{window.name} (no occurrence in the next year)"
    return f"{window.name} (next {upcoming[0]:%Y-%m-%d %H:%M} to {upcoming[1]:%Y-%m-%d %H:%M} UTC)"


def calendar_feeds_of(user) -> QuerySet[CalendarFeed]:
    return CalendarFeed.objects.filter(owner=user).select_related("team")


def calendar_feed_by_secret(secret: str) -> CalendarFeed | None:
    """The live feed this secret opens; None when it is unknown or revoked, or its owner may no longer read
    the calendar (the feed shows what its owner may see, judged at every fetch)."""
    feed = (CalendarFeed.objects.filter(digest=secret_digest(secret), revoked_at__isnull=True)
            .select_related("owner", "team").first())
    return feed if feed is not None and can_read_calendar(feed.owner) else None
