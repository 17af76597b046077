"""The release calendar with the changes on it: the page by month or week, a change's free slots and its move into
one, and the private feeds of it. The calendar's own pages (lockdowns, revoking a feed) are governance.calendar's."""

import calendar as month_calendar
from datetime import UTC, date, datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cmdb.models import ConfigurationItem, Team
from governance.calendar import selectors, services
from governance.calendar.forms import CalendarFilterForm, FeedForm, LockdownForm
from governance.calendar.permissions import can_declare_lockdown
from governance.changes.permissions import can_read_change_calendar
from governance.changes.scheduling import schedule_suggestions
from governance.changes.selectors import change_requests_visible_to
from governance.changes.services import change_request_update
from governance.core.errors import DomainError, refuse_if_forbidden
from governance.models.calendar import FreezeWindow, MaintenanceWindow
from governance.models.changes import CALENDAR_STATES


def _require_reader(user) -> None:
    if not can_read_change_calendar(user):
        raise PermissionDenied("The release calendar is open to people who follow changes.")


def _days(view: str, anchor: date) -> list[date]:
    if view == "week":
        monday = anchor - timedelta(days=anchor.weekday())
        return [monday + timedelta(days=n) for n in range(7)]
    first = anchor.replace(day=1)
    start = first - timedelta(days=first.weekday())
    last = first.replace(day=month_calendar.monthrange(first.year, first.month)[1])
    end = last + timedelta(days=6 - last.weekday())
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


@login_required
def calendar_page(request):
    _require_reader(request.user)
    form = CalendarFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    view = filters.get("view") or "month"
    anchor = filters.get("date") or datetime.now(UTC).date()
    days = _days(view, anchor)
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    cis = _filter_cis(filters)
    environment = filters.get("environment")
    environment_id = environment.pk if environment else None
    freezes = selectors.covering(selectors.freeze_occurrences_between(start, end), FreezeWindow, cis,
                                             environment_id)
    windows = selectors.covering(selectors.maintenance_occurrences_between(start, end),
                                             MaintenanceWindow, cis, environment_id)
    changes = (change_requests_visible_to(request.user).filter(
        status__in=CALENDAR_STATES, planned_start__lt=end, planned_end__gt=start).order_by("planned_start"))
    if environment is not None:
        changes = changes.filter(environment=environment)
    if cis is not None:
        changes = changes.filter(affected_cis__in=cis).distinct()
    cells = [{"day": day, "in_month": view == "week" or day.month == anchor.month,
              "freezes": _on(freezes, day, lambda o: (o.period.lower, o.period.upper)),
              "windows": _on(windows, day, lambda o: (o.period.lower, o.period.upper)),
              "changes": _on(changes, day, lambda c: (c.planned_start, c.planned_end))} for day in days]
    step = timedelta(days=7) if view == "week" else timedelta(days=31)
    return render(request, "governance/calendar/calendar.html", {
        "form": form, "view": view, "anchor": anchor, "weeks": [cells[i:i + 7] for i in range(0, len(cells), 7)],
        "previous": (anchor.replace(day=1) - timedelta(days=1)) if view == "month" else anchor - step,
        "next": (anchor.replace(day=28) + timedelta(days=4)).replace(day=1) if view == "month" else anchor + step,
        "lockdowns": selectors.lockdowns_active(datetime.now(UTC)),
        "lockdown_form": LockdownForm(),
        "can_lock": can_declare_lockdown(request.user),
        "upcoming": _upcoming_freezes(),
        "maintenance": MaintenanceWindow.objects.filter(active=True),
    })


def _filter_cis(filters) -> list[ConfigurationItem] | None:
    team: Team | None = filters.get("team")
    ci: ConfigurationItem | None = filters.get("ci")
    if ci is not None:
        return [ci]
    if team is not None:
        return list(ConfigurationItem.objects.filter(owner_team=team))
    return None


def _on(items, day: date, span) -> list:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    return [item for item in items if span(item)[0] < end and span(item)[1] > start]


def _upcoming_freezes() -> list[tuple]:
    """Each active freeze due in the next 120 days with its next three occurrences, soonest first."""
    freezes = selectors.freezes_due(datetime.now(UTC), timedelta(days=120), count=3)
    # `upcoming` is the to_attr of freezes_due's prefetch, which the stubs cannot see.
    return sorted(((freeze, [o.period for o in freeze.upcoming]) for freeze in freezes),  # type: ignore[attr-defined]
                  key=lambda item: item[1][0].lower)


@login_required
def change_slots(request, number: str):
    """The next free slots of a change, with a button each to move it there (loaded in place by htmx)."""
    _require_reader(request.user)
    change = get_object_or_404(change_requests_visible_to(request.user), number=number)
    return render(request, "governance/calendar/_slots.html", {
        "change": change, "slots": schedule_suggestions(change)})


@login_required
@require_POST
def change_reschedule(request, number: str):
    _require_reader(request.user)
    change = get_object_or_404(change_requests_visible_to(request.user), number=number)
    try:
        start = datetime.fromisoformat(request.POST["start"])
        end = datetime.fromisoformat(request.POST["end"])
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("times must carry their offset")
    except (KeyError, ValueError):
        messages.error(request, "Pick one of the suggested slots.")
        return redirect("calendar:calendar")
    try:
        change_request_update(actor=request.user, change=change, planned_start=start, planned_end=end)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{change.number} moved to {start:%Y-%m-%d %H:%M} UTC.")
    return redirect("calendar:calendar")



@login_required
def calendar_feeds(request):
    """The user's private iCalendar feeds; a new feed's address is shown on this response only."""
    _require_reader(request.user)
    form = FeedForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.calendar_feed_create(actor=request.user, name=form.cleaned_data["name"],
                                                   team=form.cleaned_data["team"])
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            form = FeedForm()
    response = render(request, "governance/calendar/feeds.html", {
        "form": form, "feeds": selectors.calendar_feeds_of(request.user),
        "issued_url": request.build_absolute_uri(reverse("calendar_feed", args=[issued.secret])) if issued else None,
    })
    if issued:
        response["Cache-Control"] = "no-store"
    return response
