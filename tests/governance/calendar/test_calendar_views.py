"""The release calendar page: what it shows, stopping the line from it, and moving a change into a slot."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from governance.calendar.selectors import lockdowns_active
from governance.calendar.services import lockdown_declare, window_occurrences_refresh
from governance.core.secrets import secret_draw
from governance.models import ChangeStatus, FreezeWindow, Lockdown, MaintenanceWindow
from tests.factories import make_change, make_ci, make_environment, make_team, make_user
from tests.governance.races import posted_during_a_twin

pytestmark = pytest.mark.django_db
URL = "/calendar/"


@pytest.fixture
def estate():
    team = make_team("payments")
    prod = make_environment("prod", 3, is_production=True)
    ci = make_ci("payments-api", team=team, criticality=1)
    return {"team": team, "prod": prod, "ci": ci}


def friday_freeze(prod) -> FreezeWindow:
    freeze = FreezeWindow.objects.create(
        name="Weekend production freeze", reason="Nobody on call", severity="hard", timezone="Europe/London",
        recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=FR", start_date=date(2026, 1, 2), start_time=time(16),
        duration_minutes=(2 * 24 + 14) * 60)
    freeze.environments.set([prod])
    window_occurrences_refresh(freeze)
    return freeze


def test_the_calendar_needs_a_login_and_a_role(client, outsider):
    assert client.get(URL).status_code == 302
    client.force_login(outsider)
    assert client.get(URL).status_code == 403


def test_the_month_shows_freeze_occurrences_windows_and_scheduled_changes(client, estate, release_manager):
    freeze = friday_freeze(estate["prod"])
    window = MaintenanceWindow.objects.create(
        name="Tier 1 Tuesday", timezone="Europe/London", recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=TU",
        start_date=date(2026, 1, 6), start_time=time(22), duration_minutes=240)
    window_occurrences_refresh(window)
    change = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"],
                         status=ChangeStatus.SCHEDULED)
    client.force_login(release_manager)
    day = change.planned_start.date()
    page = client.get(URL, {"view": "month", "date": day.isoformat()}).content.decode()
    assert page.count(f"❄ {freeze.name}") >= 4  # every Friday to Monday of the month
    assert "Tier 1 Tuesday" in page.split("Freezes: next occurrences", 1)[0]
    assert change.number in page
    assert "Weekend production freeze" in page.split("Freezes: next occurrences", 1)[1]


def test_the_week_view_shows_seven_days(client, estate, cab_member):
    client.force_login(cab_member)
    page = client.get(URL, {"view": "week", "date": "2026-12-02"}).content.decode()
    assert page.count('<div class="daynum">') == 7
    assert "Week of 30 November 2026" in page


def calendar_grid(page: str) -> str:
    """The grid of days alone: the Today box above it shows what is frozen now whatever the filters, so a test run
    during the weekend freeze sees it there."""
    return page.split('<table class="calendar', 1)[1].split("Freezes: next", 1)[0]


def test_an_environment_filter_leaves_out_freezes_of_other_environments(client, estate, cab_member):
    friday_freeze(estate["prod"])
    make_environment("staging", 2)
    client.force_login(cab_member)

    def grid(environment: str) -> str:
        return calendar_grid(client.get(URL, {"environment": environment, "date": "2026-12-01"}).content.decode())

    assert "❄" in grid("prod")
    assert "❄" not in grid("staging")


def test_the_filters_apply_to_maintenance_windows_and_to_services(client, estate, cab_member):
    staging = make_environment("staging", 2)
    other = make_ci("ledger-api", team=make_team("ledger"))
    window = MaintenanceWindow.objects.create(
        name="Staging Tuesday", timezone="UTC", recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=TU",
        start_date=date(2026, 1, 6), start_time=time(22), duration_minutes=240)
    window.environments.set([staging])
    window_occurrences_refresh(window)
    freeze = friday_freeze(estate["prod"])
    freeze.environments.clear()
    freeze.cis.set([other])
    window_occurrences_refresh(freeze)
    client.force_login(cab_member)

    def grid(**filters) -> str:
        return calendar_grid(client.get(URL, {"date": "2026-12-01", **filters}).content.decode())

    assert "Staging Tuesday" in grid(environment="staging")
    assert "Staging Tuesday" not in grid(environment="prod")
    assert "❄" in grid(ci=other.name)
    assert "❄" not in grid(ci=estate["ci"].name)
    assert "❄" not in grid(team=estate["team"].slug)
    assert "❄" in grid(team=other.owner_team.slug) and "❄" in grid()


def test_a_release_manager_stops_the_line_from_the_calendar_and_it_holds_at_once(client, estate, release_manager):
    scheduled = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"],
                            status=ChangeStatus.SCHEDULED)
    client.force_login(release_manager)
    response = client.post(reverse("calendar:lockdown_declare"), {"reason": "Payments outage INC-42"})
    assert response.status_code == 302
    [lockdown] = lockdowns_active(datetime.now(UTC))
    assert lockdown.everything and lockdown.declared_by == release_manager
    scheduled.refresh_from_db()
    assert scheduled.held_by == lockdown
    assert "LOCKDOWN" in client.get(URL).content.decode()
    client.post(reverse("calendar:lockdown_lift", args=[lockdown.pk]), {"reason": "resolved"})
    assert list(lockdowns_active(datetime.now(UTC))) == []


def test_a_requester_cannot_stop_the_line(client, estate, requester):
    client.force_login(requester)
    assert client.post(reverse("calendar:lockdown_declare"), {"reason": "I want a break"}).status_code == 403
    assert not Lockdown.objects.exists()


def test_a_change_moves_into_a_suggested_slot_that_avoids_the_freeze(client, estate, release_manager):
    friday_freeze(estate["prod"])
    change = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"],
                         status=ChangeStatus.APPROVED)
    client.force_login(release_manager)
    fragment = client.get(reverse("calendar:change_slots", args=[change.number])).content.decode()
    starts = [datetime.fromisoformat(v) for v in
              [part.split('"')[0] for part in fragment.split('name="start" value="')[1:]]]
    assert len(starts) == 5
    for start in starts:
        local = start.astimezone(ZoneInfo("Europe/London"))
        assert not (local.weekday() == 4 and local.hour >= 16) and local.weekday() not in (5, 6)
    start = starts[0]
    client.post(reverse("calendar:change_reschedule", args=[change.number]),
                {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()})
    change.refresh_from_db()
    assert change.planned_start == start
    assert change.status == ChangeStatus.CAB_REVIEW and change.revision == 2  # moving a window re-opens review


def test_an_unknown_slot_value_is_refused_without_moving_the_change(client, estate, release_manager):
    change = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"])
    before = change.planned_start
    client.force_login(release_manager)
    response = client.post(reverse("calendar:change_reschedule", args=[change.number]),
                           {"start": "tomorrow", "end": "x"}, follow=True)
    assert "Pick one of the suggested slots." in response.content.decode()
    change.refresh_from_db()
    assert change.planned_start == before


def test_the_panel_offers_slots_to_pick_and_warns_that_an_approved_change_goes_back_to_review(
        client, estate, release_manager):
    change = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"],
                         status=ChangeStatus.APPROVED, hours=2)
    client.force_login(release_manager)
    panel = client.get(reverse("calendar:change_slots", args=[change.number])).content.decode()
    assert panel.count('type="radio" name="start"') == 5
    assert f"{change.number} is approved: in another window it goes back to CAB review" in panel
    assert f"Move {change.number} to the chosen slot</button>" in panel
    # A picked slot sends its start alone: the change keeps the length of its window.
    start = datetime.fromisoformat(panel.split('name="start" value="')[1].split('"')[0])
    response = client.post(reverse("calendar:change_reschedule", args=[change.number]), {"start": start.isoformat()},
                           HTTP_REFERER="http://testserver/calendar/?view=week&date=2026-12-07", follow=True)
    assert response.redirect_chain == [("/calendar/?view=week&date=2026-12-07", 302)]
    assert "It is back in CAB review: its approvals were for the old window." in response.content.decode()
    change.refresh_from_db()
    assert (change.planned_start, change.planned_end) == (start, start + timedelta(hours=2))
    draft = make_change(make_user("ian", "requester"), cis=[estate["ci"]], environment=estate["prod"])
    client.force_login(draft.requester)
    panel = client.get(reverse("calendar:change_slots", args=[draft.number])).content.decode()
    assert "goes back to CAB review" not in panel


def test_stopping_and_restarting_the_line_names_the_changes_and_returns_to_the_page_it_was_sent_from(
        client, estate, release_manager):
    scheduled = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"],
                            status=ChangeStatus.SCHEDULED)
    client.force_login(release_manager)
    week = "http://testserver/calendar/?view=week&date=2026-12-07"
    response = client.post(reverse("calendar:lockdown_declare"), {"reason": "INC-42", "environment": "prod"},
                           HTTP_REFERER=week, follow=True)
    assert response.redirect_chain == [("/calendar/?view=week&date=2026-12-07", 302)]
    page = response.content.decode()
    assert f"Lockdown declared: the line is stopped. On hold: {scheduled.number}." in page
    assert "(prod; declared by release_manager)" in page  # the name, or the username when there is none
    lockdown = Lockdown.objects.get()
    response = client.post(reverse("calendar:lockdown_lift", args=[lockdown.pk]), {"reason": "resolved"},
                           HTTP_REFERER="https://elsewhere.example/calendar/?view=week", follow=True)
    assert response.redirect_chain == [("/calendar/", 302)]  # never to another site
    assert f"Lockdown lifted. No longer on hold: {scheduled.number}." in response.content.decode()


def test_a_requester_cannot_lift_a_lockdown(client, estate, requester, release_manager):
    lockdown = lockdown_declare(actor=release_manager, reason="INC-42", scope={"everything": True})
    client.force_login(requester)
    assert client.post(reverse("calendar:lockdown_lift", args=[lockdown.pk]), {"reason": "done"}).status_code == 403
    assert list(lockdowns_active(datetime.now(UTC))) == [lockdown]


def test_a_feed_address_is_shown_once_and_answers_until_revoked(client, estate, cab_member):
    client.force_login(cab_member)
    page = client.post(reverse("calendar:feeds"), {"name": "Outlook"}).content.decode()
    url = page.split('id="feed-url">', 1)[1].split("</pre>", 1)[0]
    path = url.split("testserver", 1)[1]
    assert client.get(path).status_code == 200
    assert url not in client.get(reverse("calendar:feeds")).content.decode()
    from governance.models.calendar import CalendarFeed

    feed = CalendarFeed.objects.get(owner=cab_member)
    client.post(reverse("calendar:feed_revoke", args=[feed.pk]))
    assert client.get(path).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_double_submit_of_the_feeds_page_is_refused_on_the_name(migration_data, client, estate, cab_member):
    from governance.models.calendar import CalendarFeed

    client.force_login(cab_member)
    drawn = secret_draw("cbf_")
    response = posted_during_a_twin(client, reverse("calendar:feeds"), {"name": "Outlook"},
                                    lambda: CalendarFeed.objects.create(owner=cab_member, name="Outlook",
                                                                        prefix=drawn.prefix, digest=drawn.digest))
    assert response.status_code == 200
    assert "You already have a feed named &#x27;Outlook&#x27;" in response.content.decode()
    assert 'id="feed-url"' not in response.content.decode()
    assert CalendarFeed.objects.filter(owner=cab_member).count() == 1


def test_nobody_revokes_another_users_feed(client, estate, cab_member, release_manager):
    from governance.calendar.services import calendar_feed_create

    issued = calendar_feed_create(actor=release_manager, name="mine")
    client.force_login(cab_member)
    assert client.post(reverse("calendar:feed_revoke", args=[issued.feed.pk])).status_code == 404


def test_a_hard_freeze_blocks_approval_and_scheduling_from_the_pages(client, estate, cab_member, release_manager):
    from governance.changes.services import change_request_transition
    from governance.models import Approval

    friday_freeze(estate["prod"])
    rita = make_user("rita", "requester")
    now = datetime.now(UTC)
    friday = (now + timedelta(days=(4 - now.weekday()) % 7 + 7)).date()
    start = datetime.combine(friday, time(18), tzinfo=UTC)  # inside the weekend freeze
    change = make_change(rita, cis=[estate["ci"]], environment=estate["prod"], planned_start=start,
                         planned_end=start + timedelta(hours=1))
    change_request_transition(actor=rita, change=change, target=ChangeStatus.SUBMITTED)
    client.force_login(cab_member)
    response = client.post(reverse("governance:change_decide", args=[change.number]),
                           {"decision": "approve", "comment": "ok"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "Weekend production freeze" in response.content.decode()
    assert not Approval.objects.filter(change=change).exists()
    change.refresh_from_db()
    assert change.status == ChangeStatus.CAB_REVIEW
    change.status = ChangeStatus.APPROVED  # as if approved before the freeze was declared
    change.save(update_fields=["status"])
    client.force_login(release_manager)
    client.post(reverse("governance:change_transition", args=[change.number]), {"target": "scheduled"})
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED


@pytest.mark.parametrize("query", [{"date": "9999-12-15"}, {"view": "week", "date": "9999-12-31"},
                                   {"date": "0001-01-01"}])
def test_dates_at_the_ends_of_time_are_refused_not_a_crash(client, estate, cab_member, query):
    client.force_login(cab_member)
    response = client.get(URL, query)
    assert response.status_code == 200
    assert "Pick a date between 1900 and 9000." in response.content.decode()


def test_the_queue_takes_the_last_day_there_is(client, estate, cab_member):
    client.force_login(cab_member)
    assert client.get("/changes/", {"window_to": "9999-12-31"}).status_code == 200


def _in_next_weekend_freeze() -> datetime:
    now = datetime.now(UTC)
    friday = (now + timedelta(days=(4 - now.weekday()) % 7 + 7)).date()
    return datetime.combine(friday, time(18), tzinfo=UTC)


def test_a_change_needing_no_approval_is_still_not_approved_inside_a_hard_freeze(estate):
    from governance.changes.services import change_request_transition
    from governance.core.errors import Conflict
    from governance.models import ApprovalPolicy

    ApprovalPolicy.objects.update(active=False)  # nobody to ask: approval would be automatic
    friday_freeze(estate["prod"])
    rita = make_user("rita", "requester")
    start = _in_next_weekend_freeze()
    change = make_change(rita, cis=[estate["ci"]], environment=estate["prod"], planned_start=start,
                         planned_end=start + timedelta(hours=1))
    with pytest.raises(Conflict, match="Weekend production freeze"):
        change_request_transition(actor=rita, change=change, target=ChangeStatus.SUBMITTED)
    change.refresh_from_db()
    assert change.status == ChangeStatus.DRAFT


def test_a_freeze_declared_after_scheduling_stops_implementation(estate, release_manager):
    from governance.changes.services import change_request_transition
    from governance.core.errors import Conflict

    start = datetime.now(UTC) - timedelta(minutes=5)
    change = make_change(make_user("rita", "requester"), cis=[estate["ci"]], environment=estate["prod"],
                         planned_start=start, planned_end=start + timedelta(hours=2), status=ChangeStatus.SCHEDULED)
    freeze = FreezeWindow.objects.create(
        name="Incident freeze", severity="hard", timezone="UTC", recurrence="once",
        start_date=(start - timedelta(minutes=30)).date(), start_time=(start - timedelta(minutes=30)).time(),
        duration_minutes=24 * 60)
    freeze.environments.set([estate["prod"]])
    window_occurrences_refresh(freeze)
    with pytest.raises(Conflict, match="Incident freeze"):
        change_request_transition(actor=release_manager, change=change, target=ChangeStatus.IMPLEMENTING)


def test_the_recorded_client_address_is_the_one_the_proxy_saw(rf, settings):
    from governance.audit.context import client_ip

    settings.USE_X_FORWARDED_FOR = True
    request = rf.get("/", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7", REMOTE_ADDR="10.0.0.2")
    assert client_ip(request) == "203.0.113.7"


def test_the_next_freezes_are_those_under_way_or_due_within_120_days_soonest_first(client, estate, cab_member):
    today = datetime.now(UTC).date()

    def once(name: str, days: int, *, active: bool = True) -> None:
        freeze = FreezeWindow.objects.create(
            name=name, reason="Quarter close", severity="hard", timezone="UTC", recurrence="once",
            start_date=today + timedelta(days=days), start_time=time(0), duration_minutes=3 * 24 * 60, active=active)
        freeze.environments.set([estate["prod"]])
        window_occurrences_refresh(freeze)

    once("Due in 100 days", 100)
    once("Under way", -1)
    once("Due in 200 days", 200)
    once("Switched off", 10, active=False)
    client.force_login(cab_member)
    box = client.get(URL).content.decode().split("Freezes: next occurrences", 1)[1].split("</section>", 1)[0]
    assert "Under way" in box and "Due in 100 days" in box
    assert box.index("Under way") < box.index("Due in 100 days")
    assert "Due in 200 days" not in box and "Switched off" not in box
