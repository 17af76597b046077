"""Occurrences of calendar windows: wall-clock times in each window's own zone across DST changes, business
days with regional holidays, and the errors that name the field at fault. Pure: windows are never saved."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from governance.calendar.recurrence import business_days_of_month, next_occurrence, occurrences, recurrence_error
from governance.models import FreezeWindow, MaintenanceWindow

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
WEEKEND = (2 * 24 + 14) * 60  # Friday 16:00 to Monday 06:00 on the wall clock


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def window(**fields) -> FreezeWindow:
    """An unsaved freeze; tests give only what matters to them."""
    defaults = {"name": "freeze", "timezone": "UTC", "recurrence": "once", "start_date": date(2026, 1, 1),
                "start_time": time(0), "duration_minutes": 60}
    return FreezeWindow(**{**defaults, **fields})


def weekend_freeze(tz: str) -> FreezeWindow:
    return window(name="weekend", timezone=tz, recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=FR",
                  start_date=date(2026, 1, 2), start_time=time(16), duration_minutes=WEEKEND)


def month_end(days: int = 3, region: str = "GB", *, quarterly: bool = False) -> FreezeWindow:
    return window(name="close", timezone="Europe/London", duration_minutes=24 * 60, business_days=days,
                  holiday_region=region, recurrence="last_bd_quarter" if quarterly else "last_bd_month")


def local(spans, tz: ZoneInfo) -> list[tuple[str, str]]:
    return [(s.astimezone(tz).strftime("%a %Y-%m-%d %H:%M"), e.astimezone(tz).strftime("%a %Y-%m-%d %H:%M"))
            for s, e in spans]


# --- DST: the wall clock holds, the UTC instants move -------------------------------------------------------

def test_a_london_weekend_freeze_keeps_16_00_and_06_00_local_across_the_spring_change():
    spans = occurrences(weekend_freeze("Europe/London"), utc(2026, 3, 19), utc(2026, 4, 7))
    # Clocks go forward on Sunday 29 March 2026: the freeze over that weekend is an hour shorter in real time.
    assert spans == [(utc(2026, 3, 20, 16), utc(2026, 3, 23, 6)),
                     (utc(2026, 3, 27, 16), utc(2026, 3, 30, 5)),
                     (utc(2026, 4, 3, 15), utc(2026, 4, 6, 5))]
    assert local(spans, LONDON) == [("Fri 2026-03-20 16:00", "Mon 2026-03-23 06:00"),
                                    ("Fri 2026-03-27 16:00", "Mon 2026-03-30 06:00"),
                                    ("Fri 2026-04-03 16:00", "Mon 2026-04-06 06:00")]


def test_a_london_weekend_freeze_keeps_16_00_and_06_00_local_across_the_autumn_change():
    spans = occurrences(weekend_freeze("Europe/London"), utc(2026, 10, 15), utc(2026, 11, 3))
    # Clocks go back on Sunday 25 October 2026: that weekend's freeze lasts an hour longer in real time.
    assert spans == [(utc(2026, 10, 16, 15), utc(2026, 10, 19, 5)),
                     (utc(2026, 10, 23, 15), utc(2026, 10, 26, 6)),
                     (utc(2026, 10, 30, 16), utc(2026, 11, 2, 6))]
    assert all(s.startswith("Fri") and s.endswith("16:00") and e.startswith("Mon") and e.endswith("06:00")
               for s, e in local(spans, LONDON))
    assert spans[1][1] - spans[1][0] == timedelta(hours=63)


def test_a_new_york_weekend_freeze_follows_the_us_changes_not_the_european_ones():
    freeze = weekend_freeze("America/New_York")
    # Second Sunday of March 2026 is the 8th; first Sunday of November is the 1st.
    assert occurrences(freeze, utc(2026, 2, 26), utc(2026, 3, 14)) == [
        (utc(2026, 2, 27, 21), utc(2026, 3, 2, 11)),
        (utc(2026, 3, 6, 21), utc(2026, 3, 9, 10)),
        (utc(2026, 3, 13, 20), utc(2026, 3, 16, 10)),
    ]
    autumn = occurrences(freeze, utc(2026, 10, 22), utc(2026, 11, 7))
    assert autumn == [(utc(2026, 10, 23, 20), utc(2026, 10, 26, 10)),
                      (utc(2026, 10, 30, 20), utc(2026, 11, 2, 11)),
                      (utc(2026, 11, 6, 21), utc(2026, 11, 9, 11))]
    assert all(pair[0].endswith("16:00") and pair[1].endswith("06:00") for pair in local(autumn, NEW_YORK))
    # Between the US and the European changes New York is four hours behind London, not five.
    london = occurrences(weekend_freeze("Europe/London"), utc(2026, 3, 20), utc(2026, 3, 21))[0][0]
    new_york = occurrences(freeze, utc(2026, 3, 20), utc(2026, 3, 21))[0][0]
    assert new_york - london == timedelta(hours=4)


def test_a_start_time_skipped_by_the_spring_change_lands_just_after_the_gap():
    # New York skips 02:00-03:00 on 8 March 2026: a window "02:30 for an hour" runs from 03:00 to 03:30 EDT.
    [(start, end)] = occurrences(window(timezone="America/New_York", start_date=date(2026, 3, 8),
                                        start_time=time(2, 30), duration_minutes=60), utc(2026, 3, 1), utc(2026, 4, 1))
    assert (start, end) == (utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 30))
    assert start.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"
    # London skips 01:00-02:00 on 29 March 2026.
    [(start, _)] = occurrences(window(timezone="Europe/London", start_date=date(2026, 3, 29),
                                      start_time=time(1, 30), duration_minutes=60), utc(2026, 3, 1), utc(2026, 4, 1))
    assert start == utc(2026, 3, 29, 1)
    assert start.astimezone(LONDON).strftime("%H:%M %Z") == "02:00 BST"


def test_a_daily_window_in_the_gap_moves_only_on_the_day_of_the_change():
    daily = window(timezone="America/New_York", recurrence="rrule", rrule="FREQ=DAILY", start_date=date(2026, 3, 1),
                   start_time=time(2, 30), duration_minutes=15)
    starts = [s for s, _ in occurrences(daily, utc(2026, 3, 7), utc(2026, 3, 10))]
    assert starts == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]


def test_an_ambiguous_autumn_time_takes_its_first_occurrence():
    night = window(timezone="America/New_York", start_date=date(2026, 11, 1), start_time=time(1, 30),
                   duration_minutes=60)
    [(start, end)] = occurrences(night, utc(2026, 10, 1), utc(2026, 12, 1))
    assert start == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first 01:30 of the night
    assert end == utc(2026, 11, 1, 7, 30)  # 02:30 EST on the wall clock


# --- windows crossing midnight and month ends ---------------------------------------------------------------

def test_a_window_crossing_midnight_is_found_from_the_next_day():
    tier1 = MaintenanceWindow(name="tier 1", timezone="Europe/London", recurrence="rrule",
                              rrule="FREQ=WEEKLY;BYDAY=TU,TH", start_date=date(2026, 1, 6), start_time=time(22),
                              duration_minutes=240)
    # Asked about 01:00-01:30 on Wednesday 2 December, the Tuesday night window is the answer.
    assert occurrences(tier1, utc(2026, 12, 2, 1), utc(2026, 12, 2, 1, 30)) == [
        (utc(2026, 12, 1, 22), utc(2026, 12, 2, 2))]
    # In summer the same wall-clock window is an hour earlier in UTC.
    assert occurrences(tier1, utc(2026, 7, 8, 0, 30), utc(2026, 7, 8, 0, 31)) == [
        (utc(2026, 7, 7, 21), utc(2026, 7, 8, 1))]
    assert occurrences(tier1, utc(2026, 12, 2, 2), utc(2026, 12, 3, 21)) == []


def test_a_freeze_crossing_a_month_end_and_a_year_end_covers_the_first_days_of_the_next():
    freeze = weekend_freeze("Europe/London")
    assert occurrences(freeze, utc(2026, 8, 1), utc(2026, 8, 2)) == [(utc(2026, 7, 31, 15), utc(2026, 8, 3, 5))]
    assert occurrences(freeze, utc(2028, 1, 2), utc(2028, 1, 2, 1)) == [(utc(2027, 12, 31, 16), utc(2028, 1, 3, 6))]


# --- business days and regional holidays --------------------------------------------------------------------

def test_a_bank_holiday_on_the_last_weekday_moves_the_month_end_window_earlier():
    # Good Friday 2029 falls on Friday 30 March, the last weekday of the month.
    assert business_days_of_month(2029, 3, "GB")[-3:] == [date(2029, 3, 27), date(2029, 3, 28), date(2029, 3, 29)]
    assert business_days_of_month(2029, 3, "")[-3:] == [date(2029, 3, 28), date(2029, 3, 29), date(2029, 3, 30)]
    march = (utc(2029, 3, 1), utc(2029, 4, 1))
    # British Summer Time began on 25 March: local midnight is 23:00 UTC the day before.
    assert occurrences(month_end(3, "GB"), *march) == [(utc(2029, 3, 26, 23), utc(2029, 3, 29, 23))]
    assert occurrences(month_end(3, ""), *march) == [(utc(2029, 3, 27, 23), utc(2029, 3, 30, 23))]


def test_christmas_and_the_boxing_day_substitute_push_the_window_back_over_them():
    # 2026: Christmas on Friday 25th, Boxing Day (Saturday) observed on Monday 28th.
    assert business_days_of_month(2026, 12, "GB")[-4:] == [date(2026, 12, 24), date(2026, 12, 29),
                                                           date(2026, 12, 30), date(2026, 12, 31)]
    december = (utc(2026, 12, 1), utc(2027, 1, 1))
    assert occurrences(month_end(4, "GB"), *december) == [(utc(2026, 12, 24), utc(2027, 1, 1))]
    assert occurrences(month_end(4, ""), *december) == [(utc(2026, 12, 28), utc(2027, 1, 1))]
    # Three days do not reach the holidays: the window is the same with or without them.
    assert occurrences(month_end(3, "GB"), *december) == [(utc(2026, 12, 29), utc(2027, 1, 1))]


def test_the_month_end_window_comes_every_month():
    spans = occurrences(month_end(3, "GB"), utc(2026, 11, 1), utc(2027, 2, 1))
    assert spans == [(utc(2026, 11, 26), utc(2026, 12, 1)), (utc(2026, 12, 29), utc(2027, 1, 1)),
                     (utc(2027, 1, 27), utc(2027, 1, 30))]  # 31 January is a Sunday


def test_the_quarter_end_window_comes_only_in_march_june_september_and_december():
    spans = occurrences(month_end(5, "GB", quarterly=True), utc(2027, 1, 1), utc(2028, 1, 1))
    assert spans == [
        (utc(2027, 3, 24), utc(2027, 3, 31, 23)),  # Good Friday 26 March skipped; BST from the 28th
        (utc(2027, 6, 23, 23), utc(2027, 6, 30, 23)),
        (utc(2027, 9, 23, 23), utc(2027, 9, 30, 23)),
        (utc(2027, 12, 23), utc(2028, 1, 1)),  # Christmas and Boxing Day observed on 27 and 28 December
    ]
    assert {s.astimezone(LONDON).month for s, _ in spans} == {3, 6, 9, 12}
    assert occurrences(month_end(5, "GB", quarterly=True), utc(2027, 4, 1), utc(2027, 6, 1)) == []


def test_a_business_day_window_starts_no_earlier_than_its_first_day():
    late = month_end(3, "GB")
    late.start_date = date(2026, 11, 27)
    assert occurrences(late, utc(2026, 11, 1), utc(2026, 12, 1)) == [(utc(2026, 11, 27), utc(2026, 12, 1))]


# --- other zones, ranges ------------------------------------------------------------------------------------

def test_a_kolkata_window_is_checked_from_utc_at_its_half_hour_offset():
    india = window(timezone="Asia/Kolkata", start_date=date(2026, 12, 1), start_time=time(9), duration_minutes=120)
    assert occurrences(india, utc(2026, 12, 1), utc(2026, 12, 2)) == [(utc(2026, 12, 1, 3, 30),
                                                                      utc(2026, 12, 1, 5, 30))]
    assert occurrences(india, utc(2026, 12, 1, 3, 29), utc(2026, 12, 1, 3, 30)) == []
    assert occurrences(india, utc(2026, 12, 1, 3, 30), utc(2026, 12, 1, 3, 31)) != []
    assert occurrences(india, utc(2026, 12, 1, 5, 29), utc(2026, 12, 1, 5, 30)) != []
    assert occurrences(india, utc(2026, 12, 1, 5, 30), utc(2026, 12, 1, 6)) == []
    weekly = window(timezone="Asia/Kolkata", recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=TU",
                    start_date=date(2026, 1, 6), start_time=time(9), duration_minutes=120)
    # India keeps no summer time: 03:30 UTC all year, while London's clocks move.
    starts = {s.time() for s, _ in occurrences(weekly, utc(2026, 1, 1), utc(2027, 1, 1))}
    assert starts == {time(3, 30)}


def test_only_occurrences_overlapping_the_range_are_returned():
    monday = window(recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=MO", start_date=date(2026, 11, 2),
                    start_time=time(10), duration_minutes=120)
    assert occurrences(monday, utc(2026, 11, 30, 12), utc(2026, 11, 30, 13)) == []  # begins as it ends
    assert occurrences(monday, utc(2026, 11, 30, 9), utc(2026, 11, 30, 10)) == []  # ends as it begins
    assert occurrences(monday, utc(2026, 11, 30, 11, 59), utc(2026, 12, 7, 10, 1)) == [
        (utc(2026, 11, 30, 10), utc(2026, 11, 30, 12)), (utc(2026, 12, 7, 10), utc(2026, 12, 7, 12))]
    assert occurrences(monday, utc(2026, 10, 1), utc(2026, 11, 2, 9)) == []  # before its first day
    assert len(occurrences(monday, utc(2026, 11, 1), utc(2026, 12, 1))) == 5
    assert next_occurrence(monday, utc(2026, 11, 30, 12)) == (utc(2026, 12, 7, 10), utc(2026, 12, 7, 12))


def test_a_rule_ending_at_a_utc_until_stops_where_rfc_5545_says():
    # RFC 5545 gives UNTIL in UTC when the start is a local time: 16:00 EDT on 13 March is 20:00 UTC.
    rule = "FREQ=WEEKLY;BYDAY=FR;UNTIL=20260313T200000Z"
    freeze = weekend_freeze("America/New_York")
    freeze.rrule = rule
    assert recurrence_error(freeze) is None
    assert [s for s, _ in occurrences(freeze, utc(2026, 3, 3), utc(2026, 4, 1))] == [utc(2026, 3, 6, 21),
                                                                                   utc(2026, 3, 13, 20)]
    freeze.rrule = "FREQ=WEEKLY;BYDAY=FR;UNTIL=20260313T195959Z"
    assert [s for s, _ in occurrences(freeze, utc(2026, 3, 3), utc(2026, 4, 1))] == [utc(2026, 3, 6, 21)]


def test_a_window_left_at_the_default_start_time_starts_at_midnight():
    unsaved = FreezeWindow(name="default start", timezone="Europe/London", start_date=date(2026, 7, 1),
                           duration_minutes=60)
    assert occurrences(unsaved, utc(2026, 6, 1), utc(2026, 8, 1)) == [(utc(2026, 6, 30, 23), utc(2026, 7, 1))]


# --- errors name the field ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"recurrence": "rrule", "rrule": "FREQ=SOMETIMES"}, "rrule", "Not an RFC 5545 recurrence rule"),
    ({"recurrence": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=XX"}, "rrule", "BYDAY"),
    ({"recurrence": "rrule", "rrule": ""}, "rrule", "needs an RFC 5545 rule"),
    ({"recurrence": "last_bd_month", "business_days": 0}, "business_days", "between 1 and 15"),
    ({"recurrence": "last_bd_quarter", "business_days": 16}, "business_days", "between 1 and 15"),
    ({"recurrence": "last_bd_month", "business_days": 3, "holiday_region": "ZZ"}, "holiday_region", "'ZZ'"),
    ({"recurrence": "last_bd_month", "business_days": 3, "holiday_region": "GB-XX"}, "holiday_region", "GB-XX"),
    ({"duration_minutes": 0}, "duration_minutes", "from one minute to a year"),
])
def test_recurrence_errors_name_the_field_and_the_reason(fields, field, words):
    bad = window(**fields)
    assert recurrence_error(bad)[0] == field
    assert words in recurrence_error(bad)[1]
    with pytest.raises(ValidationError) as raised:
        bad.clean()
    assert list(raised.value.message_dict) == [field]
    assert words in raised.value.message_dict[field][0]


@pytest.mark.parametrize("fields", [
    {"recurrence": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=FR"},
    {"recurrence": "rrule", "rrule": "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=12"},
    {"recurrence": "last_bd_month", "business_days": 3, "holiday_region": "GB"},
    {"recurrence": "last_bd_quarter", "business_days": 5, "holiday_region": "US-NY"},
    {"recurrence": "last_bd_quarter", "business_days": 5, "holiday_region": ""},
])
def test_good_windows_have_no_recurrence_error(fields):
    assert recurrence_error(window(**fields)) is None
    window(**fields).clean()


def test_an_unknown_time_zone_is_refused_on_its_field():
    with pytest.raises(ValidationError) as raised:
        window(timezone="Europe/Atlantis").clean_fields(exclude=["extra_approval_role"])
    assert "not an IANA time zone" in raised.value.message_dict["timezone"][0]
