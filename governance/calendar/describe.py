"""A calendar window's recurrence in words: "Tuesdays and Thursdays, 22:00-02:00 Europe/London" rather than
`FREQ=WEEKLY;BYDAY=TU,TH`, for the pages.

The common RFC 5545 rules are put in words: daily, weekly on days, monthly on days of the month or on the nth
weekday, yearly on a date, with an interval, a count or an end. A rule with parts this does not describe (by hour,
by week number, by set position...) is shown as it is, so nothing is ever described wrongly.
"""

import re
from datetime import date, datetime, time, timedelta

from dateutil.rrule import rrulestr

from governance.calendar.recurrence import wall_time
from governance.models.calendar import Recurrence

DASH = "\N{EN DASH}"  # between two times of one span, as the pages write it
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
ORDINAL_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last", -2: "second-to-last",
                 -3: "third-to-last"}
# The parts of a rule this module puts in words; WKST changes nothing for the rules it describes.
DESCRIBED = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL", "WKST"}


_UTC_UNTIL = re.compile(r"(UNTIL=\d{8}T\d{6})Z", re.IGNORECASE)


class _NotInWords(ValueError):
    """A rule, or a part of one, this module does not describe."""


def describe_window(window) -> str:
    """When `window` (a freeze or a maintenance window) happens, in words, with its times and time zone."""
    start = wall_time(window.start_time)
    minutes = window.duration_minutes or 0
    zone = window.timezone
    if window.recurrence == Recurrence.ONCE:
        return f"Once: {_once(window.start_date, start, minutes)} {zone}"
    if window.recurrence in (Recurrence.LAST_BUSINESS_DAYS_OF_MONTH, Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER):
        return _business_days(window, start, zone)
    try:
        when, weekday = _rule_in_words(window.rrule, window.start_date)
    except _NotInWords:
        return f"{window.rrule}: from {start:%H:%M} for {_duration(minutes)} {zone}"
    if minutes == 24 * 60 and start == time(0):
        return f"{when}, all day, {zone}"
    return f"{when}, {_times(start, minutes, weekday)} {zone}"


# --- the rule -----------------------------------------------------------------------------------------------


def _parts(rule: str, start_date: date) -> dict[str, str]:
    try:  # dateutil reads it as the calendar does (an UNTIL in UTC as a wall-clock time); what it refuses is shown
        rrulestr(_UTC_UNTIL.sub(r"\1", rule), dtstart=datetime.combine(start_date, time()))
    except (ValueError, TypeError) as exc:
        raise _NotInWords(rule) from exc
    parts = {}
    for part in rule.strip().strip(";").split(";"):
        name, _, value = part.partition("=")
        parts[name.strip().upper()] = value.strip().upper()
    if set(parts) - DESCRIBED:
        raise _NotInWords(rule)
    return parts


def _rule_in_words(rule: str, start_date: date) -> tuple[str, int | None]:
    """The days a rule picks, in words, and the weekday when it picks a single one each week (for the times)."""
    parts = _parts(rule, start_date)
    frequency = parts.get("FREQ", "")
    interval = int(parts.get("INTERVAL") or 1)
    days = parts["BYDAY"].split(",") if parts.get("BYDAY") else []
    months = sorted({int(m) for m in parts["BYMONTH"].split(",")}) if parts.get("BYMONTH") else []
    month_days = [int(d) for d in parts["BYMONTHDAY"].split(",")] if parts.get("BYMONTHDAY") else []
    weekday = None
    if frequency in ("DAILY", "WEEKLY") and not month_days:
        if days or frequency == "WEEKLY":
            when, weekday = _weekdays(days or [DAY_CODES[start_date.weekday()]])
        else:
            when = "Every day"
        when = _every_n(interval, "day" if frequency == "DAILY" else "week", when)
        if months:
            when += f" in {_month_names(months)}"
    elif frequency == "MONTHLY":
        which, plain = _in_month(days, month_days, start_date)
        every = "every month" if interval == 1 else f"every {interval} months"
        if plain:  # every one of those weekdays in the months picked
            when = f"{which} in {_month_names(months)}" if months else which if interval == 1 else f"{which}, {every}"
        else:
            when = f"{which} of {_month_names(months) if months else every}"
    elif frequency == "YEARLY":
        when = _yearly(days, month_days, months or [start_date.month], start_date, interval)
    else:
        raise _NotInWords(rule)
    return when + _bounded(parts), weekday


def _weekdays(codes: list[str]) -> tuple[str, int | None]:
    """Plain weekday codes (no ordinal) as "Tuesdays and Thursdays"; a single day's index too."""
    if any(code not in DAY_CODES for code in codes):
        raise _NotInWords(",".join(codes))
    indexes = sorted({DAY_CODES.index(code) for code in codes})
    if indexes == list(range(7)):
        return "Every day", None
    if indexes == list(range(5)):
        return "Weekdays", None
    if indexes == [5, 6]:
        return "Weekends", None
    return _and([DAY_NAMES[i] + "s" for i in indexes]), indexes[0] if len(indexes) == 1 else None


def _every_n(interval: int, unit: str, days: str) -> str:
    if interval == 1:
        return days
    if days == "Every day":
        return f"Every {interval} {unit}s"
    return f"Every {interval} {unit}s, on {days.lower() if days in ('Weekdays', 'Weekends') else days}"


def _in_month(days: list[str], month_days: list[int], start_date: date) -> tuple[str, bool]:
    """Which days of a month: "The 1st and 15th", "The last day", "The first Monday"; or plain weekdays,
    "Mondays" (True: every one of them in the month)."""
    if days and month_days:
        raise _NotInWords("BYDAY with BYMONTHDAY")
    if days:
        nth = [_nth_weekday(code) for code in days]
        if all(n is None for n in nth):
            return _weekdays(days)[0], True
        if any(n is None for n in nth):
            raise _NotInWords(",".join(days))
        return "The " + _and([str(n) for n in nth]), False
    if any(d == 0 or not -31 <= d <= 31 for d in month_days):
        raise _NotInWords("BYMONTHDAY")
    return "The " + _and([_day_of_month(d) for d in month_days or [start_date.day]]), False


def _nth_weekday(code: str) -> str | None:
    """`-1FR` as "last Friday"; a plain `FR` as None."""
    number, day = code[:-2], code[-2:]
    if day not in DAY_CODES:
        raise _NotInWords(code)
    if not number.lstrip("+"):
        return None
    n = int(number)
    if n not in ORDINAL_WORDS:
        raise _NotInWords(code)
    return f"{ORDINAL_WORDS[n]} {DAY_NAMES[DAY_CODES.index(day)]}"


def _day_of_month(day: int) -> str:
    if day > 0:
        return _ordinal(day)
    return f"{ORDINAL_WORDS.get(day) or _ordinal(-day) + '-to-last'} day"


def _month_names(months: list[int]) -> str:
    return _and([MONTH_NAMES[m - 1] for m in months])


def _yearly(days: list[str], month_days: list[int], months: list[int], start_date: date, interval: int) -> str:
    """"Every year on 24 December", "Every year, the last Monday of May", "Every 2 years, Mondays in May"."""
    every = "Every year" if interval == 1 else f"Every {interval} years"
    which, plain = _in_month(days, month_days, start_date)
    if plain:
        return f"{every}, {which} in {_month_names(months)}"
    if not days and len(months) == 1 and all(d > 0 for d in month_days or [start_date.day]):
        return f"{every} on {_and([str(d) for d in month_days or [start_date.day]])} {_month_names(months)}"
    return f"{every}, {which[0].lower()}{which[1:]} of {_month_names(months)}"


def _bounded(parts: dict[str, str]) -> str:
    if parts.get("COUNT"):
        count = int(parts["COUNT"])
        return f", {count} time{'s' if count != 1 else ''}"
    if parts.get("UNTIL"):
        text = parts["UNTIL"].rstrip("Z")
        until = datetime.strptime(text[:8], "%Y%m%d").date()
        return f", until {until.day} {MONTH_NAMES[until.month - 1][:3]} {until.year}"
    return ""


# --- times --------------------------------------------------------------------------------------------------


def _times(start: time, minutes: int, weekday: int | None) -> str:
    """"22:00-02:00" within a day (the end may fall the next morning); "16:00 to Monday 06:00" for a weekly
    single day; otherwise "from 16:00 for 3 days"."""
    if minutes < 24 * 60:
        ends = datetime.combine(date(2000, 1, 1), start) + timedelta(minutes=minutes)
        return f"{start:%H:%M}{DASH}{ends:%H:%M}"
    if weekday is not None and minutes < 7 * 24 * 60:
        ends = datetime.combine(date(2000, 1, 3 + weekday), start) + timedelta(minutes=minutes)  # 3 Jan 2000: Monday
        return f"{start:%H:%M} to {DAY_NAMES[ends.weekday()]} {ends:%H:%M}"
    return f"from {start:%H:%M} for {_duration(minutes)}"


def _once(day: date, start: time, minutes: int) -> str:
    begin = datetime.combine(day, start)
    end = begin + timedelta(minutes=minutes)
    if end.date() == begin.date() or (end - begin < timedelta(days=1) and end.time() <= start):
        return f"{_date(begin)}, {start:%H:%M}{DASH}{end:%H:%M}"
    return f"{_date(begin)} {start:%H:%M} to {_date(end)} {end:%H:%M}"


def _business_days(window, start: time, zone: str) -> str:
    quarterly = window.recurrence == Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER
    count = window.business_days
    which = "business day" if count == 1 else f"{count} business days"
    skipped = f"weekends and {window.holiday_region} public holidays" if window.holiday_region else "weekends"
    return (f"The last {which} of every {'quarter' if quarterly else 'month'} (skipping {skipped}), "
            f"from {start:%H:%M} on the first to the end of the last, {zone}")


def _duration(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute"))
             if n]
    return " ".join(words) or "0 minutes"


def _date(moment: datetime) -> str:
    return f"{DAY_NAMES[moment.weekday()][:3]} {moment.day} {MONTH_NAMES[moment.month - 1][:3]} {moment.year}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
