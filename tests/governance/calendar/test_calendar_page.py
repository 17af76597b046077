"""What the release calendar shows of each entry: times on every chip, an hour axis on the week, windows in words, a
move control for whoever may move the change, and today's work."""

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.calendar.services import window_occurrences_refresh
from governance.models import ChangeStatus, FreezeWindow, MaintenanceWindow
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db
URL = "/calendar/"
DASH = "\N{EN DASH}"


def next_monday() -> date:
    """The Monday of next week: far enough ahead for the windows' computed occurrences, whatever today is."""
    today = datetime.now(UTC).date()
    return today + timedelta(days=7 - today.weekday())


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


@pytest.fixture
def prod(db):
    return make_environment("prod", 3, is_production=True)


@pytest.fixture
def api(prod):
    return make_ci("payments-api", team=make_team("payments"), criticality=1)


@pytest.fixture
def rita(db):
    return make_user("rita", Role.REQUESTER, first_name="Rita")


@pytest.fixture
def weekend_freeze(prod):
    """Friday 16:00 to Monday 06:00, in UTC so that the chips' times are the window's own."""
    freeze = FreezeWindow.objects.create(
        name="Weekend production freeze", reason="Nobody on call", severity="hard", timezone="UTC",
        recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=FR", start_date=date(2026, 1, 2), start_time=time(16),
        duration_minutes=(2 * 24 + 14) * 60)
    freeze.environments.set([prod])
    window_occurrences_refresh(freeze)
    return freeze


@pytest.fixture
def nights(prod):
    window = MaintenanceWindow.objects.create(
        name="Tier 1 production nights", timezone="Europe/London", recurrence="rrule",
        rrule="FREQ=WEEKLY;BYDAY=TU,TH", start_date=date(2026, 1, 6), start_time=time(22), duration_minutes=240)
    window_occurrences_refresh(window)
    return window


def scheduled(requester, api, prod, start: datetime, hours: float = 2, **fields):
    return make_change(requester, cis=[api], environment=prod, status=ChangeStatus.SCHEDULED, planned_start=start,
                       planned_end=start + timedelta(hours=hours), **fields)


def cell(page: str, day: date) -> str:
    """The month view's cell of `day` (from its day number to the next cell)."""
    cells = page.split("<td class=")
    return next(c for c in cells if f'<div class="daynum">{day.day}</div>' in c and "other" not in c.split(">")[0])


def test_freeze_chips_show_when_they_start_and_end_on_each_day(client, cab_member, weekend_freeze):
    monday = next_monday()
    friday = monday + timedelta(days=4)
    client.force_login(cab_member)
    page = client.get(URL, {"date": friday.isoformat()}).content.decode()
    assert '<span class="when">16:00 →</span> <span class="name">❄ Weekend production freeze' in cell(page, friday)
    assert '<span class="when">all day</span> <span class="name">❄ Weekend production freeze' in \
        cell(page, friday + timedelta(days=1))
    if (friday + timedelta(days=3)).month == friday.month:
        assert '<span class="when">→ 06:00</span>' in cell(page, friday + timedelta(days=3))
    assert f"Fri {friday:%d %b} 16:00 → Mon" in cell(page, friday)  # the whole span, in the chip's title


def test_the_week_view_has_an_hour_axis_and_places_freezes_and_changes_on_it(client, cab_member, rita, api, prod,
                                                                            weekend_freeze):
    monday = next_monday()
    change = scheduled(rita, api, prod, at(monday + timedelta(days=1), 13), hours=2, title="Tune fraud scoring")
    client.force_login(cab_member)
    page = client.get(URL, {"view": "week", "date": monday.isoformat()}).content.decode()
    hours = re.findall(r'<div class="hour">(\d\d:00)</div>', page)
    assert hours == [f"{hour:02d}:00" for hour in range(24)]
    # Friday from 16:00: two thirds down the day, one third of it.
    assert re.search(r'class="band freeze hard" style="top:66\.667%;height:33\.333%;[^"]*"[^>]*>'
                     r'<span class="when">16:00 →</span> ❄ Weekend production freeze', page)
    # Monday until 06:00; Saturday and Sunday all day, above the axis.
    assert re.search(r'class="band freeze hard" style="top:0\.000%;height:25\.000%;', page)
    allday = page.split('<tr class="allday">', 1)[1].split("</tr>", 1)[0]
    assert allday.count("❄ Weekend production freeze") == 2
    block = page.split('class="block change" style="', 1)[1]
    assert block.startswith("top:54.167%;height:8.333%;left:0.000%;width:100.000%")
    assert change.number in block.split("</div>\n</div>", 1)[0] and f"13:00{DASH}15:00" in block


def test_changes_at_the_same_time_stand_side_by_side_on_the_week(client, cab_member, rita, api, prod):
    tuesday = next_monday() + timedelta(days=1)
    first = scheduled(rita, api, prod, at(tuesday, 22), hours=1)
    second = scheduled(rita, api, prod, at(tuesday, 22), hours=2)
    third = scheduled(rita, api, prod, at(tuesday, 23), hours=1)  # after the first: its lane again
    client.force_login(cab_member)
    page = client.get(URL, {"view": "week", "date": tuesday.isoformat()}).content.decode()
    styles = dict(re.findall(r'class="block change" style="([^"]+)">\s*<div class="chip-line wrap"><a href="/changes/'
                             r'(CHG\d+)/"', page)[i][::-1] for i in range(3))
    assert styles[first.number].endswith("left:0.000%;width:50.000%")
    assert styles[second.number].endswith("left:50.000%;width:50.000%")
    assert styles[third.number].endswith("left:0.000%;width:50.000%")


def test_the_move_control_is_offered_to_whoever_may_move_the_change(client, rita, cab_member, release_manager, api,
                                                                   prod):
    monday = next_monday()
    change = scheduled(rita, api, prod, at(monday, 9))
    button = f'aria-label="Move {change.number} to another slot"'
    for person, offered in ((release_manager, True), (rita, True), (cab_member, False)):
        client.force_login(person)
        for view in ("month", "week"):
            page = client.get(URL, {"view": view, "date": monday.isoformat()}).content.decode()
            assert change.number in page
            assert (button in page) is offered, (person.username, view)
    client.force_login(release_manager)
    page = client.get(URL, {"view": "week", "date": monday.isoformat()}).content.decode()
    assert f'hx-get="/calendar/changes/{change.number}/slots/" hx-target="#move-panel"' in page
    assert '<section id="move-panel"' in page
    panel = client.get(f"/calendar/changes/{change.number}/slots/").content.decode()
    assert f"Move <a href=\"/changes/{change.number}/\">{change.number}</a>" in panel
    assert 'name="start"' in panel


def test_windows_are_described_in_words_not_by_their_rule(client, cab_member, weekend_freeze, nights):
    client.force_login(cab_member)
    page = client.get(URL).content.decode()
    assert "FREQ=" not in page
    assert f"Tuesdays and Thursdays, 22:00{DASH}02:00 Europe/London · Flag changes outside it" in page
    assert "Fridays, 16:00 to Monday 06:00 UTC" in page.split("Freezes: next occurrences", 1)[1]


def test_today_lists_the_changes_whose_window_meets_today(client, cab_member, rita, api, prod, weekend_freeze):
    now = datetime.now(UTC)
    today = scheduled(rita, api, prod, now.replace(minute=0, second=0, microsecond=0), hours=1, title="Due today")
    scheduled(rita, api, prod, now + timedelta(days=3), title="Later")
    make_change(rita, cis=[api], environment=prod, title="A draft today", planned_start=now,
                planned_end=now + timedelta(hours=1))
    client.force_login(cab_member)
    box = client.get(URL).content.decode().split('id="today"', 1)[1].split("</section>", 1)[0]
    assert today.number in box and "Due today" in box
    assert "Later" not in box and "A draft today" not in box


def test_the_calendar_takes_the_same_number_of_queries_for_few_or_many_changes(client, rita, release_manager, api,
                                                                              prod, weekend_freeze, nights):
    monday = next_monday()
    client.force_login(release_manager)
    scheduled(rita, api, prod, at(monday, 9))
    counts = []
    for more in (0, 20):
        for n in range(more):
            scheduled(rita, api, prod, at(monday + timedelta(days=n % 7), n % 20))
        for view in ("month", "week"):
            client.get(URL, {"view": view, "date": monday.isoformat()})
            with CaptureQueriesContext(connection) as queries:
                assert client.get(URL, {"view": view, "date": monday.isoformat()}).status_code == 200
            counts.append(len(queries))
    assert counts[:2] == counts[2:], counts
