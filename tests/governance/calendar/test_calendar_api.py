"""The calendar API under /api/v1/ and the iCalendar feed: freezes and maintenance windows kept by release
managers, the "what is frozen here now?" question, lockdowns that stop approvals and scheduling at once, freezes
that block, override or add approvals, scheduling suggestions, and private feeds that show only what their
owner may see."""

import hashlib
import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from icalendar import Calendar
from rest_framework.test import APIClient

from governance.audit.ledger import audit_seal
from governance.calendar.services import window_occurrences_refresh
from governance.changes.services import approval_record, change_request_transition
from governance.models import (
    AuditEvent,
    CalendarFeed,
    ChangeRequest,
    ChangeStatus,
    FreezeWindow,
    Lockdown,
    MaintenanceWindow,
    Occurrence,
)
from governance.roles import Role
from tests.factories import make_change, make_user

pytestmark = pytest.mark.django_db

FREEZES = "/api/v1/freezes/"
ACTIVE = "/api/v1/freezes/active/"
WINDOWS = "/api/v1/maintenance-windows/"
LOCKDOWNS = "/api/v1/lockdowns/"
FEEDS = "/api/v1/calendar-feeds/"
LONDON = ZoneInfo("Europe/London")


def errors(response) -> list[dict]:
    body = response.json()
    assert set(body) == {"errors"}, body
    for error in body["errors"]:
        assert set(error) == {"code", "message", "field"}, error
    return body["errors"]


def names_field(response, field: str) -> bool:
    return any(e["field"] is not None and re.split(r"[.\[]", e["field"])[0] == field for e in errors(response))


def message(response) -> str:
    return " ".join(e["message"] for e in errors(response))


@pytest.fixture
def rm(api, release_manager):
    return api.as_user(release_manager)


@pytest.fixture
def cab2(db):
    return make_user("cab2", Role.CAB_MEMBER)


def once(name: str, starts: datetime, hours: float, **fields) -> dict:
    """A one-off window in UTC."""
    return {"name": name, "timezone": "UTC", "recurrence": "once", "start_date": starts.date().isoformat(),
            "start_time": starts.strftime("%H:%M"), "duration_minutes": int(hours * 60), **fields}


def midnight_in(days: int) -> datetime:
    return datetime.combine(timezone.now().date() + timedelta(days=days), time(), tzinfo=UTC)


def friday_freeze(**fields) -> dict:
    return {"name": "Friday freeze", "timezone": "Europe/London", "recurrence": "rrule",
            "rrule": "FREQ=WEEKLY;BYDAY=FR", "start_date": (timezone.now().date() - timedelta(days=21)).isoformat(),
            "start_time": "16:00", "duration_minutes": 14 * 60, "reason": "no weekend surprises", **fields}


def create(client, url: str, data: dict) -> dict:
    response = client.post(url, data, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def submit(change):
    change = change_request_transition(actor=change.requester, change=change, target=ChangeStatus.SUBMITTED)
    assert change.status == ChangeStatus.CAB_REVIEW, change.status
    return change


def approve_via_api(api, user, change):
    return api.as_user(user).post(f"/api/v1/changes/{change.number}/approvals/", {"decision": "approve"},
                                  format="json")


def schedule_via_api(api, user, change):
    return api.as_user(user).post(f"/api/v1/changes/{change.number}/transitions/", {"target": "scheduled"},
                                  format="json")


# --- freezes and maintenance windows ------------------------------------------------------------------------

def test_a_release_manager_creates_a_weekly_freeze_in_its_time_zone_with_its_next_five_occurrences(rm, prod,
                                                                                                   payments_api):
    body = create(rm, FREEZES, friday_freeze(environments=["prod"], cis=["Payments-API"]))
    assert body["environments"] == ["prod"] and body["cis"] == ["payments-api"]
    assert body["severity"] == "hard" and body["extra_approval_role"] is None
    starts = [datetime.fromisoformat(o["start"]).astimezone(LONDON) for o in body["next_occurrences"]]
    assert len(starts) == 5
    assert all(s.weekday() == 4 and s.time() == time(16) for s in starts)
    assert starts == sorted(starts) and starts[0] > timezone.now() - timedelta(hours=14)
    stored = Occurrence.objects.filter(freeze_id=body["id"])
    assert stored.count() >= 52  # computed ahead for the year, so "is it frozen?" is an index lookup


def test_updating_a_window_recomputes_its_stored_occurrences(rm, prod):
    body = create(rm, FREEZES, friday_freeze(environments=["prod"]))
    response = rm.patch(f"{FREEZES}{body['id']}/", {"start_time": "18:00"}, format="json")
    assert response.status_code == 200, response.content
    assert {datetime.fromisoformat(o["start"]).astimezone(LONDON).time()
            for o in response.json()["next_occurrences"]} == {time(18)}
    assert {o.period.lower.astimezone(LONDON).time() for o in Occurrence.objects.filter(freeze_id=body["id"])} \
        == {time(18)}


def test_windows_are_listed_read_and_deleted_with_their_occurrences(rm, prod, api, auditor):
    body = create(rm, FREEZES, friday_freeze(everything=True))
    listed = api.as_user(auditor).get(FREEZES)
    assert listed.status_code == 200
    assert [row["name"] for row in listed.json()["results"]] == ["Friday freeze"]
    assert api.as_user(auditor).get(f"{FREEZES}{body['id']}/").json()["everything"] is True
    assert rm.delete(f"{FREEZES}{body['id']}/").status_code == 204
    assert not FreezeWindow.objects.exists() and not Occurrence.objects.exists()


def test_a_maintenance_window_is_kept_like_a_freeze(rm, prod):
    body = create(rm, WINDOWS, {"name": "Prod nights", "timezone": "Europe/London", "recurrence": "rrule",
                                "rrule": "FREQ=WEEKLY;BYDAY=TU,TH", "start_date": "2026-01-06", "start_time": "22:00",
                                "duration_minutes": 240, "environments": ["prod"], "max_criticality": 1,
                                "change_types": ["normal"], "enforcement": "refuse"})
    assert body["enforcement"] == "refuse" and body["max_criticality"] == 1
    assert len(body["next_occurrences"]) == 5
    assert {datetime.fromisoformat(o["start"]).astimezone(LONDON).strftime("%a %H:%M")
            for o in body["next_occurrences"]} <= {"Tue 22:00", "Thu 22:00"}
    assert Occurrence.objects.filter(maintenance_id=body["id"]).exists()
    response = rm.patch(f"{WINDOWS}{body['id']}/", {"active": False}, format="json")
    assert response.status_code == 200
    assert response.json()["next_occurrences"] == []
    assert not Occurrence.objects.filter(maintenance_id=body["id"]).exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
    ({"rrule": ""}, "rrule"),
    ({"rrule": "FREQ=MINUTELY"}, "rrule"),
    ({"rrule": "DTSTART:20250101T000000Z\nRRULE:FREQ=DAILY"}, "rrule"),
    ({"severity": "soft"}, "extra_approval_role"),
    ({"severity": "soft", "extra_approval_role": "requester"}, "extra_approval_role"),
    ({"recurrence": "last_bd_month", "business_days": 0}, "business_days"),
    ({"recurrence": "last_bd_quarter", "business_days": 3, "holiday_region": "XX"}, "holiday_region"),
    ({"duration_minutes": 0}, "duration_minutes"),
    ({"environments": ["production"]}, "environments"),
    ({"cis": ["no-such-ci"]}, "cis"),
    ({"environments": [], "everything": False}, "everything"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_freeze_is_refused_naming_the_field_and_nothing_is_written(rm, prod, changes, field):
    response = rm.post(FREEZES, {**friday_freeze(environments=["prod"]), **changes}, format="json")
    assert response.status_code == 400, response.content
    assert names_field(response, field), response.json()
    assert not FreezeWindow.objects.exists() and not Occurrence.objects.exists()


def test_a_soft_freeze_names_an_approver_role(rm, prod):
    body = create(rm, FREEZES, friday_freeze(environments=["prod"], severity="soft", extra_approval_role="sre"))
    assert body["extra_approval_role"] == "sre"
    response = rm.patch(f"{FREEZES}{body['id']}/", {"extra_approval_role": None}, format="json")
    assert response.status_code == 400 and names_field(response, "extra_approval_role")


def test_a_bad_maintenance_window_is_refused_naming_the_field(rm, prod):
    response = rm.post(WINDOWS, {**once("Nights", midnight_in(1), 4, environments=["prod"]),
                                 "timezone": "Europe/Londres"}, format="json")
    assert response.status_code == 400 and names_field(response, "timezone")
    assert not MaintenanceWindow.objects.exists()


@pytest.mark.parametrize("url", [FREEZES, WINDOWS])
def test_only_release_managers_and_admins_write_windows(api, url, prod, requester, cab_member, auditor, outsider,
                                                        admin_user, release_manager):
    data = once("Nights", midnight_in(1), 4, environments=["prod"])
    for person in (requester, cab_member, auditor):
        assert api.as_user(person).post(url, data, format="json").status_code == 403
        assert api.as_user(person).get(url).status_code == 200
    assert api.as_user(outsider).get(url).status_code == 403
    assert APIClient().get(url).status_code == 401
    assert APIClient().post(url, data, format="json").status_code == 401
    body = create(api.as_user(admin_user), url, data)
    detail = f"{url}{body['id']}/"
    assert api.as_user(requester).patch(detail, {"name": "Mine"}, format="json").status_code == 403
    assert api.as_user(cab_member).delete(detail).status_code == 403
    assert api.as_user(release_manager).delete(detail).status_code == 204


def test_listing_windows_costs_the_same_few_queries_however_many_there_are(rm, api, auditor, prod, payments_api):
    client = api.as_user(auditor)
    client.get(FREEZES)  # the token's first use writes; count what reading costs

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(FREEZES).status_code == 200
        return len(queries)

    create(rm, FREEZES, friday_freeze(name="one", environments=["prod"], cis=["payments-api"]))
    few = cost()
    for n in range(4):
        create(rm, FREEZES, friday_freeze(name=f"more {n}", environments=["prod"], cis=["payments-api"],
                                          severity="soft", extra_approval_role="sre"))
    assert cost() == few <= 8


# --- which freezes and lockdowns cover this scope at this time ---------------------------------------------------

def active(client, **params) -> dict:
    response = client.get(ACTIVE, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_freeze_over_prod_is_reported_at_its_time_and_not_outside_it(rm, api, requester, prod, staging):
    starts = midnight_in(3)
    body = create(rm, FREEZES, once("Quarter close", starts, 24, environments=["prod"]))
    client = api.as_user(requester)
    inside = active(client, at=(starts + timedelta(hours=12)).isoformat(), environment="prod")
    assert [f["name"] for f in inside["freezes"]] == ["Quarter close"]
    assert inside["frozen"] is True and inside["environment"] == "prod"
    assert inside["freezes"][0]["id"] == body["id"]
    assert datetime.fromisoformat(inside["freezes"][0]["starts"]) == starts
    assert active(client, at=(starts + timedelta(hours=36)).isoformat(), environment="prod")["freezes"] == []
    assert active(client, at=(starts - timedelta(minutes=1)).isoformat(), environment="prod")["freezes"] == []
    assert active(client, at=(starts + timedelta(hours=12)).isoformat(), environment="staging")["freezes"] == []
    # An offset's unencoded "+" arrives as a space; the moment is still read.
    raw = client.get(f"{ACTIVE}?at={(starts + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%S')}+00:00"
                     f"&environment=prod")
    assert raw.status_code == 200 and len(raw.json()["freezes"]) == 1
    assert active(client, environment="prod")["freezes"] == []  # default: now, before the freeze


def test_a_freeze_on_one_ci_covers_that_ci_only(rm, api, requester, prod, payments_api, search_api):
    starts = midnight_in(2)
    create(rm, FREEZES, once("Payments migration", starts, 8, cis=["payments-api"], severity="soft",
                             extra_approval_role="cab_member"))
    client, at = api.as_user(requester), (starts + timedelta(hours=1)).isoformat()
    hit = active(client, at=at, ci="payments-api")
    assert [f["name"] for f in hit["freezes"]] == ["Payments migration"]
    assert hit["freezes"][0]["severity"] == "soft" and hit["freezes"][0]["extra_approval_role"] == "cab_member"
    assert hit["frozen"] is False  # soft: allowed with one extra approval
    assert active(client, at=at, ci="search-api")["freezes"] == []
    assert active(client, at=at, ci="payments-api", environment="prod")["freezes"] != []
    assert active(client, at=at, environment="prod")["freezes"] == []  # it does not cover the whole of prod
    assert [f["name"] for f in active(client, at=at)["freezes"]] == ["Payments migration"]  # in force somewhere


@pytest.mark.parametrize(("params", "field"), [
    ({"at": "next friday"}, "at"),
    ({"at": "2026-02-30T10:00:00Z"}, "at"),
    ({"at": "2099-01-01T00:00:00Z"}, "at"),
    ({"at": "2001-01-01T00:00:00Z"}, "at"),
    ({"ci": "no-such-ci"}, "ci"),
    ({"environment": "moon"}, "environment"),
])
def test_a_bad_question_is_a_400_naming_the_parameter(api, requester, prod, params, field):
    response = api.as_user(requester).get(ACTIVE, params)
    assert response.status_code == 400
    assert names_field(response, field)


def test_the_active_question_needs_a_calendar_reader(api, outsider):
    assert api.as_user(outsider).get(ACTIVE).status_code == 403
    assert APIClient().get(ACTIVE).status_code == 401


# --- lockdowns -------------------------------------------------------------------------------------------------

def test_a_lockdown_declared_via_the_api_stops_approvals_and_scheduling_at_once_until_lifted(
        api, rm, requester, cab_member, cab2, release_manager, prod, payments_api):
    in_review = submit(make_change(requester, cis=[payments_api], environment=prod))
    approved = submit(make_change(requester, cis=[payments_api], environment=prod, start_in_hours=72))
    approval_record(actor=cab_member, change=approved, decision="approve")

    declared = create(rm, LOCKDOWNS, {"reason": "payments outage INC-42", "environments": ["prod"]})
    assert declared["active"] is True and declared["declared_by"] == "release_manager"
    answer = active(api.as_user(requester), environment="prod")
    assert [lockdown["id"] for lockdown in answer["lockdowns"]] == [declared["id"]] and answer["frozen"] is True
    assert active(api.as_user(requester), ci="payments-api", environment="prod")["lockdowns"] != []
    assert ChangeRequest.objects.get(pk=approved.pk).held_by_id == declared["id"]

    refused = approve_via_api(api, cab2, in_review)
    assert refused.status_code == 409 and "payments outage INC-42" in message(refused)
    refused = schedule_via_api(api, release_manager, approved)
    assert refused.status_code == 409 and "lockdown" in message(refused)
    assert names_field(refused, "target")

    lifted = rm.post(f"{LOCKDOWNS}{declared['id']}/lift/", {"reason": "fixed"}, format="json")
    assert lifted.status_code == 200, lifted.content
    assert lifted.json()["active"] is False and lifted.json()["lifted_by"] == "release_manager"
    assert active(api.as_user(requester), environment="prod")["lockdowns"] == []
    allowed = approve_via_api(api, cab2, in_review)
    assert allowed.status_code == 201 and allowed.json()["change_status"] == "approved"
    allowed = schedule_via_api(api, release_manager, approved)
    assert allowed.status_code == 200 and allowed.json()["status"] == "scheduled"
    assert ChangeRequest.objects.get(pk=approved.pk).held_by_id is None


def test_lockdowns_are_listed_and_filtered_by_whether_they_are_in_force(rm, api, auditor, prod):
    old = create(rm, LOCKDOWNS, {"reason": "old", "everything": True})
    rm.post(f"{LOCKDOWNS}{old['id']}/lift/", {}, format="json")
    now = create(rm, LOCKDOWNS, {"reason": "now", "ci_types": ["database"], "tags": ["pci"],
                                 "until": (timezone.now() + timedelta(hours=2)).isoformat()})
    client = api.as_user(auditor)
    assert [row["id"] for row in client.get(LOCKDOWNS).json()["results"]] == [now["id"], old["id"]]
    assert [row["id"] for row in client.get(LOCKDOWNS, {"active": "true"}).json()["results"]] == [now["id"]]
    assert [row["id"] for row in client.get(LOCKDOWNS, {"active": "false"}).json()["results"]] == [old["id"]]
    assert names_field(client.get(LOCKDOWNS, {"active": "maybe"}), "active")
    assert client.get(f"{LOCKDOWNS}{now['id']}/").json()["ci_types"] == ["database"]


@pytest.mark.parametrize(("data", "field"), [
    ({"reason": "  ", "everything": True}, "reason"),
    ({"reason": "why"}, "everything"),
    ({"reason": "why", "everything": True, "until": "2020-01-01T00:00:00Z"}, "until"),
    ({"reason": "why", "environments": ["moon"]}, "environments"),
    ({"reason": "why", "cis": ["no-such-ci"]}, "cis"),
    ({"reason": "why", "everything": True, "declared_by": "someone"}, "declared_by"),
])
def test_a_bad_lockdown_is_refused_naming_the_field(rm, prod, data, field):
    response = rm.post(LOCKDOWNS, data, format="json")
    assert response.status_code == 400, response.content
    assert names_field(response, field), response.json()
    assert not Lockdown.objects.exists()


def test_only_release_managers_admins_and_incident_commanders_stop_the_line(api, requester, cab_member, auditor,
                                                                            outsider, admin_user, prod):
    data = {"reason": "outage", "everything": True}
    for person in (requester, cab_member, auditor):
        assert api.as_user(person).post(LOCKDOWNS, data, format="json").status_code == 403
    assert api.as_user(outsider).get(LOCKDOWNS).status_code == 403
    assert APIClient().get(LOCKDOWNS).status_code == 401
    assert APIClient().post(LOCKDOWNS, data, format="json").status_code == 401
    assert not Lockdown.objects.exists()
    commander = make_user("ic", Role.INCIDENT_COMMANDER)
    declared = create(api.as_user(commander), LOCKDOWNS, data)
    assert api.as_user(requester).post(f"{LOCKDOWNS}{declared['id']}/lift/", {}, format="json").status_code == 403
    assert api.as_user(admin_user).post(f"{LOCKDOWNS}{declared['id']}/lift/", {}, format="json").status_code == 200
    again = api.as_user(commander).post(f"{LOCKDOWNS}{declared['id']}/lift/", {}, format="json")
    assert again.status_code == 409


# --- freezes in the change lifecycle -----------------------------------------------------------------------------

def test_a_hard_freeze_over_a_changes_window_blocks_its_approval_and_its_scheduling(
        api, rm, requester, cab_member, cab2, release_manager, prod, payments_api):
    in_review = submit(make_change(requester, cis=[payments_api], environment=prod))
    approved = submit(make_change(requester, cis=[payments_api], environment=prod, start_in_hours=50))
    approval_record(actor=cab_member, change=approved, decision="approve")
    create(rm, FREEZES, once("Black Friday", midnight_in(1), 72, environments=["prod"]))

    refused = approve_via_api(api, cab2, in_review)
    assert refused.status_code == 409 and "Black Friday" in message(refused)
    refused = schedule_via_api(api, release_manager, approved)
    assert refused.status_code == 409 and "hard freeze Black Friday" in message(refused)
    assert ChangeRequest.objects.get(pk=approved.pk).status == ChangeStatus.APPROVED


def test_an_emergency_change_in_a_hard_freeze_is_approved_by_the_emergency_cab_and_the_override_is_audited(
        api, rm, requester, cab_member, prod, payments_api):
    create(rm, FREEZES, once("Black Friday", midnight_in(1), 72, environments=["prod"]))
    change = submit(make_change(requester, cis=[payments_api], environment=prod, change_type="emergency"))
    response = approve_via_api(api, cab_member, change)
    assert response.status_code == 201, response.content
    assert response.json()["change_status"] == "approved"
    audit_seal()
    override = AuditEvent.objects.get(action="freeze_override")
    assert override.object_label.startswith(change.number)
    assert override.context["freezes"] == ["Black Friday"] and override.context["approved_by"] == "cab_member"


def test_a_soft_freeze_asks_one_extra_approval_from_its_role(api, rm, requester, cab_member, prod, payments_api):
    create(rm, FREEZES, once("Month end", midnight_in(1), 72, environments=["prod"], severity="soft",
                             extra_approval_role="sre"))
    change = submit(make_change(requester, cis=[payments_api], environment=prod))
    checklist = api.as_user(requester).get(f"/api/v1/changes/{change.number}/").json()["requirements"]
    by_role = {row["role"]: row for row in checklist}
    assert set(by_role) == {"cab_member", "sre"}
    assert by_role["sre"]["needed"] == 1 and by_role["sre"]["policies"] == ["soft freeze: Month end"]
    assert approve_via_api(api, cab_member, change).json()["change_status"] == "cab_review"
    sre = make_user("sre1", Role.SRE)
    assert approve_via_api(api, sre, change).json()["change_status"] == "approved"


# --- scheduling suggestions ------------------------------------------------------------------------------------

def test_slots_fall_inside_a_maintenance_window_and_clear_of_every_freeze(api, rm, requester, prod, payments_api):
    nightly = create(rm, WINDOWS, {"name": "Nightly", "timezone": "UTC", "recurrence": "rrule",
                                   "rrule": "FREQ=DAILY", "start_date": (timezone.now().date()
                                                                         - timedelta(days=1)).isoformat(),
                                   "start_time": "22:00", "duration_minutes": 240, "environments": ["prod"]})
    freeze = create(rm, FREEZES, once("Two quiet days", midnight_in(1), 48, environments=["prod"]))
    change = make_change(requester, cis=[payments_api], environment=prod, hours=1)
    response = api.as_user(requester).get(f"/api/v1/changes/{change.number}/slots/", {"count": 5})
    assert response.status_code == 200, response.content
    assert response.json()["change"] == change.number
    slots = [(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]))
             for s in response.json()["slots"]]
    assert len(slots) == 5
    frozen = [(o.period.lower, o.period.upper) for o in Occurrence.objects.filter(freeze_id=freeze["id"])]
    assert frozen
    for start, end in slots:
        assert end - start == timedelta(hours=1) and start >= timezone.now() - timedelta(minutes=1)
        assert Occurrence.objects.filter(maintenance_id=nightly["id"], period__contains=(start, end)).exists()
        assert not any(s < end and e > start for s, e in frozen)
    assert len(set(slots)) == 5
    assert len(api.as_user(requester).get(f"/api/v1/changes/{change.number}/slots/").json()["slots"]) == 5
    assert len(api.as_user(requester).get(f"/api/v1/changes/{change.number}/slots/",
                                          {"count": 2}).json()["slots"]) == 2


def test_slots_refuse_a_bad_count_and_need_a_reader_of_changes(api, requester, outsider, prod, payments_api):
    change = make_change(requester, cis=[payments_api], environment=prod)
    url = f"/api/v1/changes/{change.number}/slots/"
    for count in ("0", "51", "many"):
        response = api.as_user(requester).get(url, {"count": count})
        assert response.status_code == 400 and names_field(response, "count")
    assert api.as_user(requester).get("/api/v1/changes/CHG9999999/slots/").status_code == 404
    assert api.as_user(outsider).get(url).status_code == 403
    assert APIClient().get(url).status_code == 401


# --- iCalendar feeds -----------------------------------------------------------------------------------------

def fetch(url: str) -> Calendar:
    response = APIClient().get(url)  # no login: the secret in the URL is the credential
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


def events(calendar: Calendar, kind: str) -> list:
    return [e for e in calendar.walk("VEVENT") if kind in [str(c) for c in e.get("CATEGORIES").cats]]


def feed_path(url: str) -> str:
    return urlsplit(url).path


def scheduled_change(requester, **fields) -> ChangeRequest:
    change = make_change(requester, **fields)
    ChangeRequest.objects.filter(pk=change.pk).update(status=ChangeStatus.SCHEDULED, risk_level="medium")
    return ChangeRequest.objects.get(pk=change.pk)


def test_a_feed_shows_the_coming_freezes_windows_and_changes_with_stable_uids(api, rm, release_manager, requester,
                                                                             prod, payments_api):
    freeze = create(rm, FREEZES, friday_freeze(environments=["prod"]))
    create(rm, WINDOWS, {"name": "Nightly", "timezone": "UTC", "recurrence": "rrule", "rrule": "FREQ=DAILY",
                         "start_date": timezone.now().date().isoformat(), "start_time": "22:00",
                         "duration_minutes": 120, "environments": ["prod"]})
    change = scheduled_change(requester, cis=[payments_api], environment=prod, title="Rotate payments keys",
                              description="Rotate the HSM-backed keys")
    issued = create(rm, FEEDS, {"name": "My calendar"})
    assert issued["url"].endswith(".ics") and issued["status"] == "active" and issued["team"] is None
    calendar = fetch(feed_path(issued["url"]))

    fridays = events(calendar, "Freeze")
    today = timezone.now().astimezone(LONDON).date()
    next_four = {today + timedelta(days=n) for n in range(1, 29) if (today + timedelta(days=n)).weekday() == 4}
    starts = [e.decoded("DTSTART").astimezone(LONDON) for e in fridays]
    assert len(next_four) == 4 and next_four <= {s.date() for s in starts}
    assert all(s.weekday() == 4 and s.time() == time(16) for s in starts)
    assert all(s <= timezone.now() + timedelta(days=120) for s in starts)
    assert str(fridays[0]["SUMMARY"]) == "Freeze: Friday freeze (hard)"
    assert [str(c) for c in fridays[0].get("CATEGORIES").cats] == ["Freeze", "hard"]
    assert "no weekend surprises" in str(fridays[0]["DESCRIPTION"])
    assert len(events(calendar, "Maintenance")) >= 100

    (changed,) = events(calendar, "Change")
    assert str(changed["SUMMARY"]) == f"{change.number}: Rotate payments keys"
    assert "Rotate the HSM-backed keys" in str(changed["DESCRIPTION"])
    assert "helm upgrade" not in calendar.to_ical().decode()  # never the implementation plan
    assert changed.decoded("DTSTART") == change.planned_start.replace(microsecond=0)

    uids = sorted(str(e["UID"]) for e in calendar.walk("VEVENT"))
    assert len(uids) == len(set(uids))
    window_occurrences_refresh(FreezeWindow.objects.get(pk=freeze["id"]))  # new rows, same occurrences
    assert sorted(str(e["UID"]) for e in fetch(feed_path(issued["url"])).walk("VEVENT")) == uids


def test_only_the_digest_of_a_feed_secret_is_kept_and_the_url_is_shown_once(rm, release_manager, prod):
    issued = create(rm, FEEDS, {"name": "My calendar"})
    secret = feed_path(issued["url"]).rsplit("/", 1)[1].removesuffix(".ics")
    feed = CalendarFeed.objects.get(pk=issued["id"])
    assert feed.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(feed.prefix) and len(feed.prefix) < 16
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM governance_calendarfeed")
        assert not any(secret in str(value) for row in cursor.fetchall() for value in row)
    listed = rm.get(FEEDS).json()["results"]
    assert [row["name"] for row in listed] == ["My calendar"] and "url" not in listed[0]
    assert "url" not in rm.get(f"{FEEDS}{issued['id']}/").json()
    audit_seal()
    recorded = AuditEvent.objects.get(object_type="governance.calendarfeed")
    assert feed.digest not in str(recorded.changes)


def test_a_revoked_or_unknown_feed_is_not_found(api, rm, release_manager, requester, prod):
    issued = create(rm, FEEDS, {"name": "My calendar"})
    path = feed_path(issued["url"])
    assert APIClient().get(path).status_code == 200
    assert api.as_user(requester).post(f"{FEEDS}{issued['id']}/revoke/").status_code == 404  # not theirs
    revoked = rm.post(f"{FEEDS}{issued['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert APIClient().get(path).status_code == 404
    assert APIClient().get("/calendar/feed/cbf_not-a-feed.ics").status_code == 404
    assert rm.post(f"{FEEDS}{issued['id']}/revoke/").status_code == 200  # twice is harmless
    assert create(rm, FEEDS, {"name": "My calendar"})["name"] == "My calendar"  # the name is free again


def test_a_feed_stops_when_its_owner_may_no_longer_read_the_calendar(rm, release_manager, prod):
    path = feed_path(create(rm, FEEDS, {"name": "Mine"})["url"])
    release_manager.is_active = False
    release_manager.save(update_fields=["is_active"])
    assert APIClient().get(path).status_code == 404


def test_a_feed_costs_the_same_few_queries_however_much_it_holds(api, rm, requester, prod, payments_api,
                                                                   search_api):
    path = feed_path(create(rm, FEEDS, {"name": "Mine", "team": "payments"})["url"])

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            fetch(path)
        return len(queries)

    create(rm, FREEZES, friday_freeze(name="one", environments=["prod"]))
    create(rm, WINDOWS, once("window", midnight_in(1), 2, environments=["prod"]))
    scheduled_change(requester, cis=[payments_api], environment=prod)
    few = cost()
    for n in range(3):
        create(rm, FREEZES, friday_freeze(name=f"more {n}", cis=["payments-api"], severity="soft",
                                          extra_approval_role="sre"))
        create(rm, WINDOWS, once(f"window {n}", midnight_in(n + 2), 2, cis=["payments-api"]))
        scheduled_change(requester, cis=[payments_api, search_api], environment=prod, start_in_hours=24 * n + 5)
    assert cost() == few <= 16


def test_feed_names_and_permissions(api, rm, requester, outsider, prod):
    create(rm, FEEDS, {"name": "Mine"})
    assert names_field(rm.post(FEEDS, {"name": "Mine"}, format="json"), "name")
    assert names_field(rm.post(FEEDS, {"name": "  "}, format="json"), "name")
    assert names_field(rm.post(FEEDS, {"name": "x" * 101}, format="json"), "name")
    assert names_field(rm.post(FEEDS, {"name": "Team", "team": "nobody"}, format="json"), "team")
    assert create(api.as_user(requester), FEEDS, {"name": "Mine"})["name"] == "Mine"  # names are per owner
    assert [row["name"] for row in api.as_user(requester).get(FEEDS).json()["results"]] == ["Mine"]
    assert api.as_user(outsider).post(FEEDS, {"name": "Mine"}, format="json").status_code == 403
    assert APIClient().post(FEEDS, {"name": "Mine"}, format="json").status_code == 401


def test_a_team_feed_shows_that_teams_scope_and_no_change_its_owner_may_not_view(
        api, rm, requester, team, prod, payments_api, search_api):
    create(rm, FREEZES, friday_freeze(name="Payments freeze", cis=["payments-api"]))
    create(rm, FREEZES, friday_freeze(name="Search freeze", cis=["search-api"]))
    create(rm, FREEZES, friday_freeze(name="Prod freeze", environments=["prod"]))
    create(rm, FREEZES, friday_freeze(name="Tier 1 freeze", max_criticality=1))
    mine = scheduled_change(requester, cis=[payments_api], environment=prod, title="Payments rollout",
                            description="PRIVATE-ROLLOUT-NOTES")
    scheduled_change(requester, cis=[search_api], environment=prod, title="Search rollout",
                     description="OTHER-TEAM-NOTES")

    calendar_only = make_user("calendar-only")
    calendar_only.user_permissions.add(Permission.objects.get(codename="view_freezewindow"))
    issued = create(api.as_user(calendar_only), FEEDS, {"name": "Payments", "team": "payments"})
    assert issued["team"] == "payments"
    calendar = fetch(feed_path(issued["url"]))
    assert {str(e["SUMMARY"]) for e in events(calendar, "Freeze")} == {
        "Freeze: Payments freeze (hard)", "Freeze: Prod freeze (hard)"}
    assert events(calendar, "Change") == []
    body = calendar.to_ical().decode()
    assert "PRIVATE-ROLLOUT-NOTES" not in body and "OTHER-TEAM-NOTES" not in body and mine.number not in body

    manager_feed = fetch(feed_path(create(rm, FEEDS, {"name": "Payments", "team": "payments"})["url"]))
    (change_event,) = events(manager_feed, "Change")
    assert str(change_event["SUMMARY"]) == f"{mine.number}: Payments rollout"
    assert "PRIVATE-ROLLOUT-NOTES" in str(change_event["DESCRIPTION"])
    assert "OTHER-TEAM-NOTES" not in manager_feed.to_ical().decode()


def test_a_freeze_edited_to_cover_nothing_is_refused_and_keeps_its_scope_and_occurrences(rm, prod):
    body = create(rm, FREEZES, friday_freeze(environments=["prod"]))
    stored = list(Occurrence.objects.filter(freeze_id=body["id"]).order_by("period").values_list("period", flat=True))
    response = rm.patch(f"{FREEZES}{body['id']}/", {"environments": [], "start_time": "18:00"}, format="json")
    assert response.status_code == 400 and names_field(response, "everything"), response.content
    freeze = FreezeWindow.objects.get()
    assert (list(freeze.environments.all()), freeze.start_time) == ([prod], time(16))
    assert list(Occurrence.objects.filter(freeze=freeze).order_by("period").values_list("period", flat=True)) == stored


def test_a_freeze_edited_without_naming_its_scope_keeps_the_scope_it_has(rm, prod):
    body = create(rm, FREEZES, friday_freeze(environments=["prod"]))
    response = rm.patch(f"{FREEZES}{body['id']}/", {"everything": False, "start_time": "18:00"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["environments"] == ["prod"]
    starts = {o.period.lower.astimezone(LONDON).time() for o in Occurrence.objects.filter(freeze_id=body["id"])}
    assert starts == {time(18)}  # recomputed by the save
