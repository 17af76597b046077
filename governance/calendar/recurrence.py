"""Occurrences of calendar windows in UTC, evaluated in each window's own time zone, DST included.

A window's times are wall-clock times where it applies: "Friday 16:00 to Monday 06:00 Europe/London" ends at
06:00 local whichever side of a clock change it falls. Business-day rules skip weekends and the public
holidays of the window's region (the `holidays` package).
"""

import calendar as month_calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from dateutil.rrule import rrulestr

from governance.models.calendar import Recurrence

Span = tuple[datetime, datetime]


def localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in `tz` as UTC. A time skipped by a spring-forward change lands just after it; an
    ambiguous autumn time takes its first occurrence."""
    return wall.replace(tzinfo=tz).astimezone(UTC)


def recurrence_error(window) -> tuple[str, str] | None:
    """(field, message) when the window's recurrence cannot be evaluated, else None."""
    if window.recurrence == Recurrence.RRULE:
        if not window.rrule:
            return "rrule", "A recurring window needs an RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=FR."
        try:
            rrulestr(window.rrule, dtstart=datetime.combine(window.start_date, time()))
        except (ValueError, TypeError) as exc:
            return "rrule", f"Not an RFC 5545 recurrence rule: {exc}."
    if window.recurrence in (Recurrence.LAST_BUSINESS_DAYS_OF_MONTH, Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER):
        if not 1 <= window.business_days <= 15:
            return "business_days", "Give between 1 and 15 business days."
        if window.holiday_region and _holidays(window.holiday_region, 2000) is None:
            return "holiday_region", f"No holiday calendar for {window.holiday_region!r} (use e.g. GB, US, IN)."
    elif window.duration_minutes is not None and window.duration_minutes < 1:
        return "duration_minutes", "A window lasts at least one minute."
    return None


def _holidays(region: str, year: int):
    country, _, subdivision = region.partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    except (NotImplementedError, KeyError):
        return None


def occurrences(window, start: datetime, end: datetime) -> list[Span]:
    """The window's occurrences that overlap [start, end), as UTC spans, in order."""
    tz = ZoneInfo(window.timezone)
    if window.recurrence in (Recurrence.LAST_BUSINESS_DAYS_OF_MONTH, Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER):
        spans = _business_day_spans(window, tz, start, end)
    else:
        first = datetime.combine(window.start_date, window.start_time)
        length = timedelta(minutes=window.duration_minutes)
        if window.recurrence == Recurrence.ONCE:
            walls = [first]
        else:
            local_start = start.astimezone(tz).replace(tzinfo=None) - length - timedelta(days=1)
            local_end = end.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
            walls = rrulestr(window.rrule, dtstart=first).between(local_start, local_end, inc=True)
        spans = [(localize(wall, tz), localize(wall + length, tz)) for wall in walls]
    return [(s, e) for s, e in spans if s < end and e > start]


def _business_day_spans(window, tz: ZoneInfo, start: datetime, end: datetime) -> list[Span]:
    quarterly = window.recurrence == Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER
    month = date(start.astimezone(tz).year, start.astimezone(tz).month, 1)
    last = end.astimezone(tz).date()
    spans = []
    while month <= last:
        if not quarterly or month.month in (3, 6, 9, 12):
            days = business_days_of_month(month.year, month.month, window.holiday_region)[-window.business_days:]
            if days:
                begin = localize(datetime.combine(days[0], window.start_time), tz)
                finish = localize(datetime.combine(days[-1] + timedelta(days=1), time()), tz)
                spans.append((max(begin, localize(datetime.combine(window.start_date, window.start_time), tz)),
                              finish))
        month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [(s, e) for s, e in spans if s < e]


def business_days_of_month(year: int, month: int, region: str) -> list[date]:
    """Weekdays of the month that are not public holidays in `region` (no region: weekdays)."""
    closed = _holidays(region, year) if region else {}
    days = (date(year, month, d) for d in range(1, month_calendar.monthrange(year, month)[1] + 1))
    return [d for d in days if d.weekday() < 5 and d not in (closed or {})]


def next_occurrence(window, after: datetime, horizon_days: int = 400) -> Span | None:
    upcoming = occurrences(window, after, after + timedelta(days=horizon_days))
    return upcoming[0] if upcoming else None
