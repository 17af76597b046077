"""Occurrences of calendar windows in UTC, evaluated in each window's own time zone, DST included.

A window's times are wall-clock times where it applies: "Friday 16:00 to Monday 06:00 Europe/London" ends at
06:00 local whichever side of a clock change it falls. Business-day rules skip weekends and the public
holidays of the window's region (the `holidays` package).
"""

import calendar as month_calendar
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import islice
from zoneinfo import ZoneInfo

import holidays
from dateutil.rrule import rrulestr

from governance.models.calendar import Recurrence

Span = tuple[datetime, datetime]
MAX_DURATION_MINUTES = 366 * 24 * 60
MIN_YEAR, MAX_YEAR = 1900, 9000  # far from datetime's limits, where window arithmetic would overflow
MAX_PER_WEEK = 7 * 24


def localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in `tz` as UTC. A time skipped by a spring-forward change lands just after it; an
    ambiguous autumn time takes its first occurrence."""
    moment = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if moment.astimezone(tz).replace(tzinfo=None) == wall:
        return moment
    # Skipped: fold=0 reads it with the offset from before the change, which lands as far past the gap as it
    # was into it (02:30 -> 03:30). The clock change itself lies between that and the fold=1 reading (01:30).
    before, after = int(wall.replace(tzinfo=tz, fold=1).timestamp()), int(moment.timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) < wall:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


def wall_time(value: time | str) -> time:
    """A window's start time; a window built in code before saving may still hold the field's text default."""
    return time.fromisoformat(value) if isinstance(value, str) else value


# RFC 5545 gives UNTIL in UTC when the start is a local time; dateutil compares it with our naive wall-clock
# start, so it is turned into the window's wall-clock time first.
_UTC_UNTIL = re.compile(r"(UNTIL=)(\d{8}T\d{6})Z", re.IGNORECASE)


def _rule(window, dtstart: datetime):
    try:
        tz: tzinfo = ZoneInfo(window.timezone)
    except (ValueError, KeyError):
        tz = UTC  # the time zone field reports its own error

    def to_wall(match: re.Match) -> str:
        moment = datetime.strptime(match[2], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).astimezone(tz)
        return match[1] + moment.strftime("%Y%m%dT%H%M%S")

    return rrulestr(_UTC_UNTIL.sub(to_wall, window.rrule), dtstart=dtstart)


def recurrence_error(window) -> tuple[str, str] | None:
    """(field, message) when the window's recurrence cannot be evaluated, else None."""
    if window.recurrence == Recurrence.RRULE:
        if not window.rrule:
            return "rrule", "A recurring window needs an RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=FR."
        if "DTSTART" in window.rrule.upper():  # it would override start_date and time zone, or fail to compare
            return "rrule", "Leave DTSTART out of the rule: the window's start date, time and time zone give it."
        try:
            rule = _rule(window, datetime.combine(window.start_date, time()))
        except (ValueError, TypeError) as exc:
            return "rrule", f"Not an RFC 5545 recurrence rule: {exc}."
        # Occurrences are stored for a year ahead: a rule firing every minute would write half a million rows.
        first_week = list(islice(rule, MAX_PER_WEEK + 1))
        if len(first_week) > MAX_PER_WEEK and first_week[-1] - first_week[0] < timedelta(days=7):
            return "rrule", "A window recurs at most once an hour (e.g. FREQ=DAILY or FREQ=WEEKLY;BYDAY=FR)."
    if window.recurrence in (Recurrence.LAST_BUSINESS_DAYS_OF_MONTH, Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER):
        if not 1 <= window.business_days <= 15:
            return "business_days", "Give between 1 and 15 business days."
        if window.holiday_region and _holidays(window.holiday_region, 2000) is None:
            return "holiday_region", f"No holiday calendar for {window.holiday_region!r} (use e.g. GB, US, IN)."
    elif window.duration_minutes is not None and not 1 <= window.duration_minutes <= MAX_DURATION_MINUTES:
        return "duration_minutes", "A window lasts from one minute to a year."
    if window.start_date is not None and not MIN_YEAR <= window.start_date.year <= MAX_YEAR:
        return "start_date", f"Give a start date between {MIN_YEAR} and {MAX_YEAR}."
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
        first = datetime.combine(window.start_date, wall_time(window.start_time))
        length = timedelta(minutes=window.duration_minutes)
        if window.recurrence == Recurrence.ONCE:
            walls = [first]
        else:
            local_start = start.astimezone(tz).replace(tzinfo=None) - length - timedelta(days=1)
            local_end = end.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
            walls = _rule(window, first).between(local_start, local_end, inc=True)
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
                begin = localize(datetime.combine(days[0], wall_time(window.start_time)), tz)
                finish = localize(datetime.combine(days[-1] + timedelta(days=1), time()), tz)
                spans.append((max(begin, localize(datetime.combine(window.start_date, wall_time(window.start_time)),
                                                  tz)), finish))
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
