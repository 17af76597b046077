"""The release calendar with the changes on it: the page by month or week, a change's free slots and its move into
one, and the private feeds of it. The calendar's own pages (lockdowns, revoking a feed) are governance.calendar's."""

import calendar as month_calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cmdb.models import ConfigurationItem, Team
from governance.calendar import selectors, services
from governance.calendar.describe import describe_window
from governance.calendar.forms import CalendarFilterForm, FeedForm, LockdownForm
from governance.calendar.permissions import can_declare_lockdown
from governance.calendar.views import back_to_calendar
from governance.changes.permissions import can_read_change_calendar, edit_refusal
from governance.changes.scheduling import schedule_suggestions, slot_length
from governance.changes.selectors import change_requests_visible_to
from governance.changes.services import change_request_update
from governance.core.errors import DomainError, refuse_if_forbidden
from governance.models.calendar import FreezeWindow, MaintenanceWindow
from governance.models.changes import CALENDAR_STATES, READY_STATES, ChangeRequest, ChangeStatus, ChangeType


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


DAY = timedelta(days=1)


@dataclass
class Chip:
    """The part of a freeze, maintenance window or change that falls on one day (UTC): what the page shows of it
    there, its times, and where it sits on the week view's hour axis."""

    item: object  # an occurrence (of a freeze or a maintenance window) or a change
    start: datetime  # the whole span, which may run over several days
    end: datetime
    day: datetime  # the day's first moment
    lane: int = 0  # side by side with the day's other changes, on the week view
    lanes: int = 1

    @property
    def starts_today(self) -> bool:
        return self.start >= self.day

    @property
    def ends_today(self) -> bool:
        return self.end <= self.day + DAY

    @property
    def whole_day(self) -> bool:
        return self.start <= self.day and self.end >= self.day + DAY

    @property
    def when(self) -> str:
        """"16:00-18:00"; "16:00 →" on the day it starts; "→ 06:00" on the day it ends; "all day" when it covers
        the day from midnight to midnight."""
        start, end = f"{self.start:%H:%M}", "24:00" if self.end == self.day + DAY else f"{self.end:%H:%M}"
        if self.whole_day:
            return "all day"
        if self.starts_today and self.ends_today:
            return f"{start}\N{EN DASH}{end}"
        if self.starts_today:
            return f"{start} →"
        return f"→ {end}" if self.ends_today else "all day"

    @property
    def span(self) -> str:
        """The whole span, for the chip's title."""
        overnight = self.end - self.start <= DAY and self.end.time() <= self.start.time()
        if self.start.date() == self.end.date() or overnight:
            return f"{self.start:%a %d %b %H:%M}\N{EN DASH}{self.end:%H:%M} UTC"
        return f"{self.start:%a %d %b %H:%M} → {self.end:%a %d %b %H:%M} UTC"

    def _share(self, moment: datetime) -> float:
        return min(max((moment - self.day) / DAY, 0.0), 1.0) * 100

    @property
    def position(self) -> str:
        """Where it sits on the week view's hour axis: a share of the day, as CSS."""
        top, bottom = self._share(self.start), self._share(self.end)
        width = 100 / self.lanes
        return (f"top:{top:.3f}%;height:{bottom - top:.3f}%;"
                f"left:{self.lane * width:.3f}%;width:{width:.3f}%")


def _chips(items, day: date, span) -> list[Chip]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    spans = ((item, *span(item)) for item in items)
    return [Chip(item, begins, ends, start) for item, begins, ends in spans if begins < start + DAY and ends > start]


def _side_by_side(chips: list[Chip]) -> list[Chip]:
    """Gives overlapping changes of a day lanes of their own, so that none hides another on the hour axis."""
    lane_ends: list[datetime] = []
    for chip in sorted(chips, key=lambda c: (c.start, c.end)):
        free = next((n for n, lane_end in enumerate(lane_ends) if lane_end <= chip.start), None)
        if free is None:
            lane_ends.append(chip.end)
            chip.lane = len(lane_ends) - 1
        else:
            lane_ends[free] = chip.end
            chip.lane = free
    for chip in chips:
        chip.lanes = max(1, len(lane_ends))
    return chips


@login_required
def calendar_page(request):
    _require_reader(request.user)
    form = CalendarFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    view = filters.get("view") or "month"
    now = datetime.now(UTC)
    anchor = filters.get("date") or now.date()
    days = _days(view, anchor)
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    cis = _filter_cis(filters)
    environment = filters.get("environment")
    environment_id = environment.pk if environment else None
    freezes = list(selectors.covering(selectors.freeze_occurrences_between(start, end), FreezeWindow, cis,
                                      environment_id))
    windows = list(selectors.covering(selectors.maintenance_occurrences_between(start, end), MaintenanceWindow,
                                      cis, environment_id))
    changes = list(_changes_between(request.user, start, end, environment, cis))
    movable = {change.pk for change in changes if edit_refusal(request.user, change) is None}
    for change in changes:
        change.movable = change.pk in movable
    period = (lambda o: (o.period.lower, o.period.upper))  # noqa: E731
    window_of = (lambda c: (c.planned_start, c.planned_end))  # noqa: E731
    cells = [{"day": day, "in_month": view == "week" or day.month == anchor.month, "today": day == now.date(),
              "freezes": _chips(freezes, day, period), "windows": _chips(windows, day, period),
              "changes": _side_by_side(_chips(changes, day, window_of))} for day in days]
    step = timedelta(days=7) if view == "week" else timedelta(days=31)
    maintenance = list(MaintenanceWindow.objects.filter(active=True))
    return render(request, "governance/calendar/calendar.html", {
        "form": form, "view": view, "anchor": anchor, "weeks": [cells[i:i + 7] for i in range(0, len(cells), 7)],
        "hours": [f"{hour:02d}:00" for hour in range(24)],
        "previous": (anchor.replace(day=1) - timedelta(days=1)) if view == "month" else anchor - step,
        "next": (anchor.replace(day=28) + timedelta(days=4)).replace(day=1) if view == "month" else anchor + step,
        "lockdowns": selectors.lockdowns_active(now),
        "lockdown_form": LockdownForm(),
        "can_lock": can_declare_lockdown(request.user),
        "upcoming": _upcoming_freezes(),
        "maintenance": [(window, describe_window(window)) for window in maintenance],
        "today": _today(request.user, now),
    })


def _changes_between(user, start: datetime, end: datetime, environment, cis) -> QuerySet[ChangeRequest]:
    changes = (change_requests_visible_to(user).filter(
        status__in=CALENDAR_STATES, planned_start__lt=end, planned_end__gt=start).order_by("planned_start", "pk"))
    if environment is not None:
        changes = changes.filter(environment=environment)
    if cis is not None:
        changes = changes.filter(affected_cis__in=cis).distinct()
    return changes


def _filter_cis(filters) -> list[ConfigurationItem] | None:
    team: Team | None = filters.get("team")
    ci: ConfigurationItem | None = filters.get("ci")
    if ci is not None:
        return [ci]
    if team is not None:
        return list(ConfigurationItem.objects.filter(owner_team=team))
    return None


def _upcoming_freezes() -> list[tuple]:
    """Each active freeze due in the next 120 days, its recurrence in words and its next three occurrences,
    soonest first."""
    freezes = selectors.freezes_due(datetime.now(UTC), timedelta(days=120), count=3)
    # `upcoming` is the to_attr of freezes_due's prefetch, which the stubs cannot see.
    return sorted(((freeze, describe_window(freeze), [o.period for o in freeze.upcoming])  # type: ignore[attr-defined]
                   for freeze in freezes), key=lambda item: item[2][0].lower)


def _today(user, now: datetime) -> dict:
    """Today's work (UTC): the changes whose window meets today, and the freezes in force now."""
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    changes = list(_changes_between(user, midnight, midnight + DAY, None, None))
    frozen = list(selectors.freeze_occurrences_between(now, now + timedelta(seconds=1)))
    return {"changes": changes, "freezes": frozen, "now": now}


@login_required
def change_slots(request, number: str):
    """The next free slots of a change to pick from, and the button that confirms the move (loaded in place by
    htmx). An approved change moved goes back to CAB review: the panel says so before the move."""
    _require_reader(request.user)
    change = get_object_or_404(change_requests_visible_to(request.user), number=number)
    return render(request, "governance/calendar/_slots.html", {
        "change": change, "slots": schedule_suggestions(change),
        "back_to_review": change.status in READY_STATES
        and change.change_type != ChangeType.STANDARD})


@login_required
@require_POST
def change_reschedule(request, number: str):
    _require_reader(request.user)
    change = get_object_or_404(change_requests_visible_to(request.user), number=number)
    try:
        start = datetime.fromisoformat(request.POST["start"])
        # A slot picked in the panel sends its start; it lasts as long as the change's window.
        end = datetime.fromisoformat(request.POST["end"]) if "end" in request.POST else start + slot_length(change)
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("times must carry their offset")
    except (KeyError, ValueError):
        messages.error(request, "Pick one of the suggested slots.")
        return back_to_calendar(request)
    was = change.status
    try:
        change = change_request_update(actor=request.user, change=change, planned_start=start, planned_end=end)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        review = (" It is back in CAB review: its approvals were for the old window."
                  if change.status == ChangeStatus.CAB_REVIEW and was != ChangeStatus.CAB_REVIEW else "")
        messages.success(request, f"{change.number} moved to {start:%Y-%m-%d %H:%M} UTC.{review}")
    return back_to_calendar(request)


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
