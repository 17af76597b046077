"""A window's recurrence in words, as the calendar pages show it: the common rules put in words, the rest shown as
they are. No database: the describer reads the window's fields only."""

from datetime import date, time
from types import SimpleNamespace

import pytest

from governance.calendar.describe import describe_window
from governance.models.calendar import FreezeWindow, MaintenanceWindow, Recurrence


def words(window) -> str:
    """The description, its en dash between two times written as a hyphen here."""
    return describe_window(window).replace("\N{EN DASH}", "-")


def window(rrule: str = "", *, recurrence: str = Recurrence.RRULE, start: time = time(22), minutes: int = 240,
           day: date = date(2026, 1, 6), zone: str = "Europe/London", business_days: int = 0, region: str = ""):
    """The fields the describer reads (6 January 2026 is a Tuesday)."""
    return SimpleNamespace(recurrence=recurrence, rrule=rrule, start_date=day, start_time=start,
                           duration_minutes=minutes, timezone=zone, business_days=business_days,
                           holiday_region=region)


@pytest.mark.parametrize(("rule", "expected"), [
    # daily
    ("FREQ=DAILY", "Every day, 22:00-02:00 Europe/London"),
    ("FREQ=DAILY;INTERVAL=3", "Every 3 days, 22:00-02:00 Europe/London"),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "Weekdays, 22:00-02:00 Europe/London"),
    ("FREQ=DAILY;BYMONTH=12", "Every day in December, 22:00-02:00 Europe/London"),
    # weekly by days
    ("FREQ=WEEKLY;BYDAY=TU,TH", "Tuesdays and Thursdays, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY;BYDAY=TH,TU", "Tuesdays and Thursdays, 22:00-02:00 Europe/London"),
    ("freq=weekly;byday=mo,we,fr", "Mondays, Wednesdays and Fridays, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY", "Tuesdays, 22:00-02:00 Europe/London"),  # the start date's day
    ("FREQ=WEEKLY;BYDAY=SA,SU", "Weekends, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU", "Every day, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE", "Every 2 weeks, on Mondays and Wednesdays, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TU,WE,TH,FR", "Every 2 weeks, on weekdays, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY;WKST=SU;BYDAY=FR", "Fridays, 22:00-02:00 Europe/London"),
    # monthly by day of the month
    ("FREQ=MONTHLY;BYMONTHDAY=1", "The 1st of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15", "The 1st and 15th of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYMONTHDAY=22", "The 22nd of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", "The last day of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=-2", "The second-to-last day of every 3 months, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY", "The 6th of every month, 22:00-02:00 Europe/London"),  # the start date's day
    # monthly by nth weekday
    ("FREQ=MONTHLY;BYDAY=1MO", "The first Monday of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYDAY=+2TU", "The second Tuesday of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYDAY=-1FR", "The last Friday of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYDAY=1MO,3MO", "The first Monday and third Monday of every month, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYDAY=2TU;BYMONTH=3,6,9,12",
     "The second Tuesday of March, June, September and December, 22:00-02:00 Europe/London"),
    ("FREQ=MONTHLY;BYDAY=MO", "Mondays, 22:00-02:00 Europe/London"),
    # yearly
    ("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24", "Every year on 24 December, 22:00-02:00 Europe/London"),
    ("FREQ=YEARLY", "Every year on 6 January, 22:00-02:00 Europe/London"),
    ("FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO", "Every year, the last Monday of May, 22:00-02:00 Europe/London"),
    # bounded
    ("FREQ=WEEKLY;BYDAY=FR;COUNT=10", "Fridays, 10 times, 22:00-02:00 Europe/London"),
    ("FREQ=WEEKLY;BYDAY=FR;UNTIL=20270331T000000Z", "Fridays, until 31 Mar 2027, 22:00-02:00 Europe/London"),
])
def test_common_rules_are_put_in_words(rule, expected):
    assert words(window(rule)) == expected


@pytest.mark.parametrize("rule", [
    "FREQ=HOURLY;INTERVAL=6",
    "FREQ=WEEKLY;BYDAY=FR;BYHOUR=3",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=YEARLY;BYWEEKNO=20",
    "FREQ=MONTHLY;BYDAY=1MO,TU",
    "not a rule at all",
])
def test_a_rule_not_put_in_words_is_shown_as_it_is_with_its_times(rule):
    assert words(window(rule)) == f"{rule}: from 22:00 for 4 hours Europe/London"


def test_a_weekly_freeze_over_the_weekend_says_when_it_ends():
    weekend = window("FREQ=WEEKLY;BYDAY=FR", start=time(16), minutes=(2 * 24 + 14) * 60)
    assert words(weekend) == "Fridays, 16:00 to Monday 06:00 Europe/London"


def test_longer_windows_say_how_long_and_whole_days_say_all_day():
    assert words(window("FREQ=MONTHLY;BYDAY=-1FR", start=time(16), minutes=3 * 24 * 60 + 90)) == \
        "The last Friday of every month, from 16:00 for 3 days 1 hour 30 minutes Europe/London"
    assert words(window("FREQ=WEEKLY;BYDAY=SA", start=time(0), minutes=24 * 60, zone="UTC")) == \
        "Saturdays, all day, UTC"


def test_a_window_that_happens_once_gives_its_dates():
    once = Recurrence.ONCE
    assert words(window(recurrence=once, start=time(9), minutes=8 * 60, day=date(2026, 12, 12))) == \
        "Once: Sat 12 Dec 2026, 09:00-17:00 Europe/London"
    assert words(window(recurrence=once, start=time(22), minutes=4 * 60, day=date(2026, 12, 12))) == \
        "Once: Sat 12 Dec 2026, 22:00-02:00 Europe/London"
    assert words(window(recurrence=once, start=time(0), minutes=9 * 24 * 60, day=date(2026, 12, 24),
                                  zone="America/New_York")) == \
        "Once: Thu 24 Dec 2026 00:00 to Sat 2 Jan 2027 00:00 America/New_York"


def test_business_day_windows_name_their_days_and_holidays():
    month_end = window(recurrence=Recurrence.LAST_BUSINESS_DAYS_OF_MONTH, start=time(0), business_days=3, region="GB")
    assert words(month_end) == ("The last 3 business days of every month (skipping weekends and GB public "
                                          "holidays), from 00:00 on the first to the end of the last, Europe/London")
    quarter_end = window(recurrence=Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER, start=time(18), business_days=1)
    assert words(quarter_end) == ("The last business day of every quarter (skipping weekends), from 18:00 "
                                            "on the first to the end of the last, Europe/London")


def test_saved_windows_are_described_from_their_own_fields():
    """The models' own instances (a time still held as its text default included), not only look-alikes."""
    freeze = FreezeWindow(name="Weekend production freeze", recurrence=Recurrence.RRULE, rrule="FREQ=WEEKLY;BYDAY=FR",
                          start_date=date(2026, 1, 2), start_time=time(16), duration_minutes=(2 * 24 + 14) * 60,
                          timezone="Europe/London")
    assert words(freeze) == "Fridays, 16:00 to Monday 06:00 Europe/London"
    nights = MaintenanceWindow(name="Tier 1 production nights", recurrence=Recurrence.RRULE,
                               rrule="FREQ=WEEKLY;BYDAY=TU,TH", start_date=date(2026, 1, 6), duration_minutes=240,
                               timezone="Europe/London")
    nights.start_time = "22:00"
    assert words(nights) == "Tuesdays and Thursdays, 22:00-02:00 Europe/London"
