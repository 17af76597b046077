"""The release calendar in the admin: saving a window stores its occurrences, lockdowns are declared and lifted
through the calendar services only, and occurrences are read-only."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.utils import timezone

from governance.changes.services import approval_record, change_request_transition
from governance.models import ChangeStatus as S
from governance.models import FreezeWindow, Lockdown, MaintenanceWindow, Occurrence
from governance.roles import Role
from tests.factories import make_change, make_ci, make_user, sealed

pytestmark = pytest.mark.django_db

ADMIN = "/admin/governance/"
LONDON = ZoneInfo("Europe/London")
SCOPE = {"ci_types": "", "tags": "", "max_criticality": ""}
WINDOW = {**SCOPE, "timezone": "Europe/London", "recurrence": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=FR",
          "start_date": "2026-01-02", "start_time": "16:00", "duration_minutes": str((2 * 24 + 14) * 60),
          "business_days": "0", "holiday_region": "", "active": "on", "_save": "Save"}


@pytest.fixture
def calendar_admin(client):
    """A staff member holding the admin role, which keeps the calendar."""
    client.force_login(make_user("adam", Role.ADMIN, is_staff=True))
    return client


@pytest.fixture
def lockdown_admin(client):
    rachel = make_user("rachel", Role.RELEASE_MANAGER, Role.ADMIN, is_staff=True)
    client.force_login(rachel)
    client.user = rachel
    return client


def test_a_freeze_saved_in_the_admin_gets_its_occurrences_and_shows_the_next_ones(calendar_admin, prod):
    response = calendar_admin.post(f"{ADMIN}freezewindow/add/", {
        **WINDOW, "name": "Weekend production freeze", "severity": "hard", "reason": "Nobody on call",
        "extra_approval_role": "", "environments": [prod.pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    freeze = FreezeWindow.objects.get()
    assert list(freeze.environments.all()) == [prod]
    stored = Occurrence.objects.filter(freeze=freeze)
    assert stored.count() in (61, 62)  # a month back and 400 days ahead, by the week
    upcoming = stored.filter(period__startswith__gt=timezone.now()).order_by("period").first().period
    page = calendar_admin.get(f"{ADMIN}freezewindow/{freeze.pk}/change/").content.decode()
    assert "Next occurrences" in page
    assert f"{upcoming.lower:%Y-%m-%d %H:%M} to {upcoming.upper:%Y-%m-%d %H:%M} UTC" in page
    assert "Fri " in page and "16:00 to Mon " in page and "06:00 Europe/London" in page
    assert 'name="next_occurrences"' not in page
    # The list's "Next" is the one in force when the test runs during the freeze, else the next to begin.
    current = stored.filter(period__endswith__gt=timezone.now()).order_by("period").first().period
    listing = calendar_admin.get(f"{ADMIN}freezewindow/").content.decode()
    assert f"{current.lower:%Y-%m-%d %H:%M} UTC" in listing


def test_a_freeze_with_a_bad_rule_is_refused_on_the_rule_field_and_nothing_is_saved(calendar_admin, prod):
    response = calendar_admin.post(f"{ADMIN}freezewindow/add/", {
        **WINDOW, "name": "Broken", "rrule": "FREQ=SOMETIMES", "severity": "hard", "reason": "",
        "extra_approval_role": "", "environments": [prod.pk]})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["rrule"]
    assert "Not an RFC 5545 recurrence rule" in errors["rrule"][0]
    assert not FreezeWindow.objects.exists()
    assert not Occurrence.objects.exists()


def test_moving_a_maintenance_window_in_the_admin_moves_its_occurrences(calendar_admin, prod):
    response = calendar_admin.post(f"{ADMIN}maintenancewindow/add/", {
        **WINDOW, "name": "Tier 1 nights", "rrule": "FREQ=WEEKLY;BYDAY=TU,TH", "start_date": "2026-01-06",
        "start_time": "22:00", "duration_minutes": "240", "change_types": "", "enforcement": "flag",
        "environments": [prod.pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    window = MaintenanceWindow.objects.get()
    london = {o.period.lower.astimezone(LONDON).time() for o in Occurrence.objects.filter(maintenance=window)}
    assert london == {time(22)}
    count = Occurrence.objects.filter(maintenance=window).count()

    response = calendar_admin.post(f"{ADMIN}maintenancewindow/{window.pk}/change/", {
        **WINDOW, "name": "Tier 1 nights", "rrule": "FREQ=WEEKLY;BYDAY=TU,TH", "start_date": "2026-01-06",
        "start_time": "23:00", "duration_minutes": "180", "change_types": "", "enforcement": "refuse",
        "environments": [prod.pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    moved = Occurrence.objects.filter(maintenance=window)
    assert moved.count() == count
    assert {o.period.lower.astimezone(LONDON).time() for o in moved} == {time(23)}
    assert {o.period.upper - o.period.lower for o in moved} == {timedelta(hours=3)}
    assert calendar_admin.get(f"{ADMIN}maintenancewindow/").status_code == 200


def test_a_lockdown_added_in_the_admin_is_declared_by_the_service(lockdown_admin, prod):
    requester, cab = make_user("riya", Role.REQUESTER), make_user("carlos", Role.CAB_MEMBER)
    change = make_change(requester, cis=[make_ci(criticality=3)], environment=prod)
    change_request_transition(actor=requester, change=change, target=S.SUBMITTED)
    approval_record(actor=cab, change=change, decision="approve")

    response = lockdown_admin.post(f"{ADMIN}lockdown/add/", {
        **SCOPE, "reason": "Payments outage INC-42", "until_0": "", "until_1": "", "environments": [prod.pk],
        "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:3000]
    lockdown = Lockdown.objects.get()
    assert (lockdown.reason, lockdown.declared_by) == ("Payments outage INC-42", lockdown_admin.user)
    assert list(lockdown.environments.all()) == [prod]
    change.refresh_from_db()
    assert change.held_by == lockdown  # the service's holds, not a bare row
    [event] = sealed(action="lockdown_declared")
    assert event.context["changes_held"] == 1


@pytest.mark.parametrize(("fields", "message"), [
    ({"until_0": "2020-01-01", "until_1": "10:00"}, "A lockdown must last into the future."),
    ({}, "Say what the lockdown covers, or that it covers everything."),
])
def test_a_lockdown_the_service_refuses_is_shown_on_the_form_and_nothing_is_saved(lockdown_admin, fields, message):
    response = lockdown_admin.post(f"{ADMIN}lockdown/add/", {
        **SCOPE, "reason": "Outage", "until_0": "", "until_1": "", **fields, "_save": "Save"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Lockdown.objects.exists()


def test_a_lockdown_is_lifted_by_the_admin_action_and_never_edited(lockdown_admin, prod):
    response = lockdown_admin.post(f"{ADMIN}lockdown/add/", {
        **SCOPE, "reason": "DNS trouble", "until_0": "", "until_1": "", "everything": "on", "_save": "Save"})
    assert response.status_code == 302
    lockdown = Lockdown.objects.get()
    page = lockdown_admin.get(f"{ADMIN}lockdown/{lockdown.pk}/change/")
    assert page.status_code == 200
    assert b'name="lifted_at' not in page.content and b'name="reason"' not in page.content
    assert lockdown_admin.post(f"{ADMIN}lockdown/{lockdown.pk}/change/", {
        "lifted_at_0": "2030-01-01", "lifted_at_1": "00:00", "reason": "forged"}).status_code == 403
    lockdown.refresh_from_db()
    assert (lockdown.lifted_at, lockdown.reason) == (None, "DNS trouble")

    response = lockdown_admin.post(f"{ADMIN}lockdown/", {"action": "lift", "_selected_action": [lockdown.pk],
                                                         "index": 0}, follow=True)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["1 lockdown(s) lifted."]
    lockdown.refresh_from_db()
    assert lockdown.lifted_at is not None
    assert (lockdown.lifted_by, lockdown.lift_reason) == (lockdown_admin.user, "lifted in the admin")
    response = lockdown_admin.post(f"{ADMIN}lockdown/", {"action": "lift", "_selected_action": [lockdown.pk],
                                                         "index": 0}, follow=True)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"{lockdown}: This lockdown was already lifted."]


def test_staff_without_the_lockdown_permission_cannot_declare_one_in_the_admin(client):
    auditor = make_user("anna", Role.AUDITOR, is_staff=True)
    client.force_login(auditor)
    assert client.get(f"{ADMIN}lockdown/add/").status_code == 403
    assert client.post(f"{ADMIN}lockdown/add/", {**SCOPE, "reason": "x", "everything": "on"}).status_code == 403
    assert not Lockdown.objects.exists()


def test_occurrences_are_read_only_in_the_admin(client):
    window = FreezeWindow.objects.create(name="Once", start_date=date(2026, 12, 24), start_time=time(0),
                                         duration_minutes=60)
    occurrence = Occurrence.objects.create(freeze=window, period=(datetime(2026, 12, 24, tzinfo=UTC),
                                                                  datetime(2026, 12, 24, 1, tzinfo=UTC)))
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    assert client.get(f"{ADMIN}occurrence/").status_code == 200
    assert client.get(f"{ADMIN}occurrence/add/").status_code == 403
    assert client.post(f"{ADMIN}occurrence/{occurrence.pk}/change/", {
        "period_0": "2027-01-01 00:00", "period_1": "2027-01-02 00:00"}).status_code == 403
    assert client.post(f"{ADMIN}occurrence/{occurrence.pk}/delete/", {"post": "yes"}).status_code == 403
    occurrence.refresh_from_db()
    assert occurrence.period.lower == datetime(2026, 12, 24, tzinfo=UTC)


def test_the_window_list_shows_each_next_occurrence_in_a_fixed_number_of_queries(calendar_admin, prod,
                                                                                  django_assert_max_num_queries):
    for n in range(3):
        calendar_admin.post(f"{ADMIN}freezewindow/add/", {**WINDOW, "name": f"Friday {n}", "severity": "hard",
                                                            "reason": "quiet", "environments": [prod.pk]})
    calendar_admin.get(f"{ADMIN}freezewindow/")
    with django_assert_max_num_queries(12) as few:
        page = calendar_admin.get(f"{ADMIN}freezewindow/").content.decode()
    assert page.count(" UTC</td>") == 3
    bound = len(few.captured_queries)  # read now: the next request empties the connection's query log
    for n in range(3, 9):
        calendar_admin.post(f"{ADMIN}freezewindow/add/", {**WINDOW, "name": f"Friday {n}", "severity": "hard",
                                                            "reason": "quiet", "environments": [prod.pk]})
    with django_assert_max_num_queries(bound):
        assert calendar_admin.get(f"{ADMIN}freezewindow/").content.decode().count(" UTC</td>") == 9


def test_a_window_that_covers_nothing_is_refused_in_the_admin(calendar_admin):
    response = calendar_admin.post(f"{ADMIN}freezewindow/add/", {**WINDOW, "name": "Nothing", "severity": "hard",
                                                                 "reason": "quiet"})
    assert response.status_code == 200
    assert "Say what the window covers" in response.content.decode()
    assert not FreezeWindow.objects.exists()


def test_staff_the_window_service_refuses_cannot_save_a_window_in_the_admin(client, prod):
    """The model permission opens the admin's add page; window_save also asks to read the calendar."""
    clerk = make_user("clerk", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["add_freezewindow", "change_freezewindow"]))
    client.force_login(clerk)
    response = client.post(f"{ADMIN}freezewindow/add/", {**WINDOW, "name": "Sneaky", "severity": "hard",
                                                         "reason": "quiet", "environments": [prod.pk]})
    assert response.status_code == 200
    assert "Release managers and administrators keep freeze and maintenance windows." in response.content.decode()
    assert not FreezeWindow.objects.exists() and not Occurrence.objects.exists()


def test_validating_the_lockdown_form_writes_nothing_and_saving_it_declares_once(lockdown_admin, prod, rf):
    request = rf.post(f"{ADMIN}lockdown/add/")
    request.user = lockdown_admin.user
    form_class = site._registry[Lockdown].get_form(request)
    declared = {**SCOPE, "reason": "Payments outage", "until_0": "", "until_1": "", "environments": [prod.pk]}
    form = form_class(data=declared)
    assert form.is_valid(), form.errors
    assert not Lockdown.objects.exists() and not sealed(action="lockdown_declared")

    assert lockdown_admin.post(f"{ADMIN}lockdown/add/", {**declared, "_save": "Save"}).status_code == 302
    assert Lockdown.objects.count() == 1
    assert len(sealed(action="lockdown_declared")) == 1


def test_a_lockdown_form_refused_for_its_actor_shows_why_and_writes_nothing(lockdown_admin, prod, rf):
    request = rf.post(f"{ADMIN}lockdown/add/")
    request.user = lockdown_admin.user
    form_class = site._registry[Lockdown].get_form(request)
    form_class.actor = make_user("anna", Role.AUDITOR)  # as if the role was taken away since the page was served
    form = form_class(data={**SCOPE, "reason": "Outage", "until_0": "", "until_1": "", "everything": "on"})
    assert not form.is_valid()
    assert form.non_field_errors() == ["Release managers and incident commanders declare lockdowns."]
    assert not Lockdown.objects.exists() and not sealed(action="lockdown_declared")
