"""The iCalendar feed: a calendar client subscribes to a secret URL and sees the next 120 days of freezes,
maintenance windows and the changes its owner may see. No login: the secret in the URL is the credential."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe
from icalendar import Calendar, Event

from cmdb.models import ConfigurationItem, Environment
from governance.calendar.selectors import (
    OCCURRENCE_SCOPE,
    calendar_feed_by_secret,
    covers,
    freeze_occurrences_between,
    maintenance_occurrences_between,
)
from governance.changes.selectors import change_requests_visible_to
from governance.models.calendar import CalendarFeed, FreezeWindow, MaintenanceWindow, Occurrence, Severity
from governance.models.changes import APPROVED_STATES, ChangeRequest

HORIZON = timedelta(days=120)
UID_DOMAIN = "changeboard"

TeamScope = tuple[list[ConfigurationItem], list[int | None]]


def feed_calendar(feed: CalendarFeed, *, now: datetime | None = None,
                  change_url: Callable[[str], str] | None = None) -> Calendar:
    """The feed's calendar from now to HORIZON ahead. A team feed holds only what covers one of the team's CIs;
    changes are those its owner may view, judged now, and never more of them than number, title and summary."""
    now = now or timezone.now()
    start, end = now, now + HORIZON
    calendar = Calendar()
    calendar.add("prodid", "-//Changeboard//Release calendar//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Changeboard: {feed.name}")
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    scope = _team_scope(feed) if feed.team_id else None
    judged: dict[tuple[str, int], bool] = {}  # each window's scope is judged once, however many occurrences

    def shown(window) -> bool:
        key = (window._meta.model_name, window.pk)
        if key not in judged:
            judged[key] = scope is None or _covers_team(window, scope)
        return judged[key]

    # Each selector holds the occurrences of its own kind of window only, so that link is set.
    for occurrence in freeze_occurrences_between(start, end).prefetch_related(*OCCURRENCE_SCOPE):
        freeze = occurrence.freeze
        if freeze is not None and shown(freeze):
            calendar.add_component(_freeze_event(freeze, occurrence, now))
    for occurrence in maintenance_occurrences_between(start, end).prefetch_related(*OCCURRENCE_SCOPE):
        maintenance = occurrence.maintenance
        if maintenance is not None and shown(maintenance):
            calendar.add_component(_maintenance_event(maintenance, occurrence, now))
    for change in _feed_changes(feed, start, end):
        calendar.add_component(_change_event(change, now, change_url))
    return calendar


def _team_scope(feed: CalendarFeed) -> TeamScope:
    cis = list(ConfigurationItem.objects.filter(owner_team_id=feed.team_id))
    return cis, list(Environment.objects.values_list("pk", flat=True))


def _covers_team(window, scope: TeamScope) -> bool:
    """Whether the window covers one of the team's CIs: in the CI's own environment when it has one, else in
    any environment."""
    cis, environment_ids = scope
    if window.everything:
        return True
    return any(covers(window, ci, environment_id) for ci in cis
               for environment_id in ([ci.environment_id] if ci.environment_id else environment_ids or [None]))


def _feed_changes(feed: CalendarFeed, start: datetime, end: datetime):
    changes = (change_requests_visible_to(feed.owner)
               .filter(status__in=APPROVED_STATES, planned_start__lt=end, planned_end__gt=start)
               .prefetch_related("affected_cis").order_by("planned_start", "pk"))
    if feed.team_id:
        touching = ChangeRequest.affected_cis.through.objects.filter(configurationitem__owner_team_id=feed.team_id)
        changes = changes.filter(pk__in=touching.values("changerequest_id"))
    return changes


def _uid(kind: str, pk, starts: datetime | None = None) -> str:
    """Stable across refreshes: occurrences are recomputed as new rows, so the window and the start name one."""
    moment = f"-{starts.astimezone(UTC):%Y%m%dT%H%M%SZ}" if starts else ""
    return f"{kind}-{pk}{moment}@{UID_DOMAIN}"


def _event(uid: str, summary: str, starts: datetime, ends: datetime, now: datetime, categories: list[str],
           description: str) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", now)
    event.add("dtstart", starts)
    event.add("dtend", ends)
    event.add("summary", summary)
    event.add("categories", categories)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")  # a freeze or a change is not the subscriber's own busy time
    return event


def _freeze_event(freeze: FreezeWindow, occurrence: Occurrence, now: datetime) -> Event:
    severity = Severity(freeze.severity)
    lines = [severity.label + "."]
    if severity == Severity.SOFT and freeze.extra_approval_role is not None:
        lines.append(f"Extra approval from: {freeze.extra_approval_role.name}.")
    lines += [f"Covers: {_scope_text(freeze)}.", *([freeze.reason] if freeze.reason else [])]
    return _event(_uid("freeze", freeze.pk, occurrence.period.lower), f"Freeze: {freeze.name} ({severity.value})",
                  occurrence.period.lower, occurrence.period.upper, now, ["Freeze", severity.value], "\n".join(lines))


def _maintenance_event(window: MaintenanceWindow, occurrence: Occurrence, now: datetime) -> Event:
    lines = [window.get_enforcement_display() + ".",
             f"Change types: {', '.join(window.change_types or ['normal'])}.", f"Covers: {_scope_text(window)}."]
    return _event(_uid("maintenance", window.pk, occurrence.period.lower), f"Maintenance: {window.name}",
                  occurrence.period.lower, occurrence.period.upper, now, ["Maintenance", window.enforcement],
                  "\n".join(lines))


def _change_event(change: ChangeRequest, now: datetime, change_url: Callable[[str], str] | None) -> Event:
    cis = ", ".join(ci.name for ci in change.affected_cis.all())
    lines = [f"{change.get_status_display()} {change.get_change_type_display().lower()} change"
             f"{f' in {change.environment.name}' if change.environment else ''}.",
             f"Risk: {change.risk_level or 'not assessed'}.", f"CIs: {cis or 'none'}."]
    if change.description:
        lines += ["", change.description]
    assert change.planned_start is not None and change.planned_end is not None  # _feed_changes's are planned
    event = _event(_uid("change", change.number), f"{change.number}: {change.title}", change.planned_start,
                   change.planned_end, now, ["Change", change.status], "\n".join(lines))
    event.add("sequence", change.revision)
    event.add("last-modified", change.updated_at)
    if change_url is not None:
        event.add("url", change_url(change.number))
    return event


def _scope_text(scope) -> str:
    if scope.everything:
        return "everything"
    parts = [f"environments {', '.join(e.name for e in scope.environments.all())}" if scope.environments.all()
             else "", f"CIs {', '.join(c.name for c in scope.cis.all())}" if scope.cis.all() else "",
             f"types {', '.join(scope.ci_types)}" if scope.ci_types else "",
             f"tags {', '.join(scope.tags)}" if scope.tags else "",
             f"tier {scope.max_criticality} or more critical" if scope.max_criticality else "",
             "SOX-scoped CIs" if scope.sox_scoped else "", "PHI CIs" if scope.phi else "",
             "PCI CIs" if scope.pci else ""]
    return "; ".join(part for part in parts if part) or "nothing"


@require_safe
def calendar_feed(request: HttpRequest, secret: str) -> HttpResponse:
    """GET /calendar/feed/<secret>.ics. Unknown and revoked secrets alike are 404: nothing tells them apart."""
    feed = calendar_feed_by_secret(secret)
    if feed is None:
        raise Http404("No such calendar feed.")
    calendar = feed_calendar(feed, change_url=lambda number: request.build_absolute_uri(
        reverse("governance:change_detail", args=[number])))
    response = HttpResponse(calendar.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="changeboard.ics"'
    response["Cache-Control"] = "private, no-store"  # a revoked feed must stop at once, caches included
    return response
