"""What the change pages warn of while there is time to act: a lockdown's hold, a hard freeze that will refuse the
change, approvals nobody may give, and why a person holding a needed role sees no buttons."""

import html
import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.calendar.services import lockdown_declare, lockdown_lift, window_occurrences_refresh
from governance.changes.advisories import change_advisories
from governance.changes.selectors import ApprovalState, approval_gaps, change_hold
from governance.changes.services import (
    approval_preview,
    approval_record,
    change_request_transition,
    change_request_update,
)
from governance.core.errors import Conflict
from governance.models import ChangeRequest, FreezeWindow, Lockdown, PolicyRequirement
from governance.models import ChangeStatus as S
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staging(db):
    return make_environment("staging", 2)


@pytest.fixture
def api(db):
    # tier 3 and outside every SOX/PCI policy: a normal change to it needs one CAB member
    return make_ci("statements-api", team=make_team("payments", name="Payments"), criticality=3)


@pytest.fixture
def rita(db):
    return make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")


@pytest.fixture
def carla(db):
    return make_user("carla", Role.CAB_MEMBER, first_name="Carla", last_name="Cab")


@pytest.fixture
def rachel(db):
    return make_user("rachel", Role.RELEASE_MANAGER, first_name="Rachel", last_name="Release")


def page(client, user, change) -> str:
    client.force_login(user)
    response = client.get(f"/changes/{change.number}/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def hour(days: float = 0, hours: float = 0) -> datetime:
    return (timezone.now() + timedelta(days=days, hours=hours)).replace(minute=0, second=0, microsecond=0)


def hard_freeze(name: str, start: datetime, hours: float, *, environments=(), severity: str = "hard",
                role: str | None = None) -> FreezeWindow:
    window = FreezeWindow.objects.create(
        name=name, timezone="UTC", start_date=start.date(), start_time=start.time(), duration_minutes=int(hours * 60),
        severity=severity, extra_approval_role=Group.objects.get(name=role) if role else None)
    window.environments.set(environments)
    window_occurrences_refresh(window)
    return window


def submitted(change: ChangeRequest) -> ChangeRequest:
    return change_request_transition(actor=change.requester, change=change, target=S.SUBMITTED)


def scheduled(rita, carla, rachel, api, staging, **fields) -> ChangeRequest:
    change = submitted(make_change(rita, cis=[api], environment=staging, title="Rotate statements keys", **fields))
    approval_record(actor=carla, change=change, decision="approve")
    return change_request_transition(actor=rachel, change=change, target=S.SCHEDULED)


# --- a lockdown's hold -----------------------------------------------------------------------------------------

def test_a_held_change_shows_its_hold_and_is_not_offered_for_implementation(client, rita, carla, rachel, api,
                                                                              staging):
    change = scheduled(rita, carla, rachel, api, staging)
    body = page(client, rachel, change)
    assert "Start implementing" in body  # before the lockdown
    commander = make_user("ines", Role.INCIDENT_COMMANDER, first_name="Ines", last_name="Incident")
    lockdown = lockdown_declare(actor=commander, reason="Payments outage INC-4711", scope={"everything": True})
    change.refresh_from_db()
    assert change.held_by == lockdown

    body = page(client, rachel, change)
    hold = body.split('id="hold"', 1)[1].split("</section>", 1)[0]
    assert "On hold: a lockdown stops the line" in hold and "Payments outage INC-4711" in hold
    assert "Declared by Ines Incident" in hold
    assert f"since {lockdown.declared_at:%Y-%m-%d %H:%M} UTC" in hold and "until lifted" in hold
    assert 'href="/calendar/"' in hold
    assert "Start implementing" not in body
    assert "Cancel change" in body  # the other moves stay

    client.force_login(rachel)
    queue = html.unescape(client.get("/changes/").content.decode())
    row = queue.split(f'data-number="{change.number}"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="warn held" title="On hold: Payments outage INC-4711 (lockdown declared by Ines Incident' in row

    lockdown_lift(actor=commander, lockdown=lockdown, reason="resolved")
    body = page(client, rachel, change)
    assert 'id="hold"' not in body and "Start implementing" in body


def test_a_lockdown_that_ran_out_holds_nothing_on_the_page_or_in_the_queue(client, rita, carla, rachel, api, staging):
    change = scheduled(rita, carla, rachel, api, staging)
    commander = make_user("ines", Role.INCIDENT_COMMANDER)
    lockdown = lockdown_declare(actor=commander, reason="Short freeze of the line", scope={"everything": True},
                                until=timezone.now() + timedelta(hours=1))
    change.refresh_from_db()
    assert change_hold(change, timezone.now()) == lockdown
    Lockdown.objects.filter(pk=lockdown.pk).update(declared_at=timezone.now() - timedelta(hours=3),
                                                   until=timezone.now() - timedelta(minutes=1))
    change.refresh_from_db()
    assert change.held_by_id == lockdown.pk  # still named, but it holds nothing any more
    assert change_hold(change, timezone.now()) is None
    body = page(client, rachel, change)
    assert 'id="hold"' not in body and "Start implementing" in body
    queue = client.get("/changes/").content.decode()
    assert 'class="warn held"' not in queue


def test_the_implementation_service_refuses_a_held_change_with_the_same_hold(rita, carla, rachel, api, staging):
    change = scheduled(rita, carla, rachel, api, staging, start_in_hours=0.1)
    lockdown_declare(actor=make_user("ines", Role.INCIDENT_COMMANDER), reason="Payments outage",
                     scope={"everything": True})
    with pytest.raises(Conflict, match="This change is on hold: lockdown"):
        change_request_transition(actor=rachel, change=change, target=S.IMPLEMENTING)


# --- a hard freeze over the window -----------------------------------------------------------------------------

def freeze_message(freeze, start, end, consequence="it will be refused at approval") -> str:
    return (f"The window lies inside the hard freeze {freeze.name} ({start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC): {consequence}; move it.")


def test_a_window_inside_a_hard_freeze_is_warned_before_submit_and_in_review(client, rita, carla, api, staging):
    start = hour(days=10)
    freeze = hard_freeze("Year-end close", start, 48, environments=[staging])
    change = make_change(rita, cis=[api], environment=staging, planned_start=start + timedelta(hours=2),
                         planned_end=start + timedelta(hours=4))
    warning = freeze_message(freeze, start, start + timedelta(hours=48))
    assert warning in page(client, rita, change)  # the draft's page, before submitting
    client.force_login(rita)
    assert warning in html.unescape(client.get(f"/changes/{change.number}/edit/").content.decode())  # its form

    change = submitted(change)
    assert change.status == S.CAB_REVIEW  # submitting is not refused: approval is
    assert warning in page(client, carla, change)  # the CAB sees it too
    with pytest.raises(Conflict, match="hard freeze Year-end close"):
        approval_record(actor=carla, change=change, decision="approve")


def test_a_window_that_only_meets_a_hard_freeze_is_told_so(client, rita, api, staging):
    start = hour(days=10)
    hard_freeze("Year-end close", start, 4, environments=[staging])
    change = make_change(rita, cis=[api], environment=staging, planned_start=start + timedelta(hours=3),
                         planned_end=start + timedelta(hours=6))
    [advisory] = change_advisories(change, now=timezone.now(), approvals=False)
    assert advisory.message.startswith("The window meets the hard freeze Year-end close (")


def test_no_freeze_warning_for_a_soft_freeze_an_emergency_change_or_another_environment(rita, api, staging):
    start = hour(days=10)
    prod = make_environment("prod", 3, is_production=True)
    hard_freeze("Prod freeze", start, 48, environments=[prod])
    hard_freeze("Soft staging freeze", start, 48, environments=[staging], severity="soft", role=Role.SRE)
    window = {"planned_start": start + timedelta(hours=2), "planned_end": start + timedelta(hours=4)}
    normal = make_change(rita, cis=[api], environment=staging, **window)
    assert [a.code for a in change_advisories(normal, now=timezone.now(), approvals=False)] == []
    emergency = make_change(rita, cis=[api], environment=prod, change_type="emergency", **window)
    assert [a.code for a in change_advisories(emergency, now=timezone.now(), approvals=False)] == []
    in_prod = make_change(rita, cis=[api], environment=prod, **window)
    assert [a.code for a in change_advisories(in_prod, now=timezone.now(), approvals=False)] == ["hard_freeze"]


def test_an_approved_change_in_a_freeze_declared_later_is_told_it_cannot_be_scheduled(rita, carla, api, staging):
    change = submitted(make_change(rita, cis=[api], environment=staging, start_in_hours=24 * 10))
    approval_record(actor=carla, change=change, decision="approve")
    change.refresh_from_db()
    start = change.planned_start - timedelta(hours=1)
    freeze = hard_freeze("Emergency freeze", start, 24, environments=[staging])
    [advisory] = change_advisories(change, now=timezone.now())
    assert advisory.message == freeze_message(freeze, start, start + timedelta(hours=24), "it cannot be scheduled")


def test_the_risk_line_says_inside_for_a_freeze_the_window_meets_and_near_for_one_close_by(rita, api, staging):
    start = hour(days=10)
    hard_freeze("Year-end close", start, 24, environments=[staging])
    hard_freeze("Quarter close", start + timedelta(hours=36), 4, environments=[staging], severity="soft",
                role=Role.SRE)
    inside = submitted(make_change(rita, cis=[api], environment=staging, planned_start=start + timedelta(hours=1),
                                   planned_end=start + timedelta(hours=2)))
    [factor] = [f for f in inside.risk_factors if f["factor"] == "freeze nearness"]
    assert factor == {"factor": "freeze nearness", "points": 10,
                      "detail": "inside Year-end close; within 48 hours of Quarter close"}
    near = submitted(make_change(rita, cis=[api], environment=staging, planned_start=start - timedelta(hours=6),
                                 planned_end=start - timedelta(hours=5)))
    [factor] = [f for f in near.risk_factors if f["factor"] == "freeze nearness"]
    assert factor["detail"] == "within 48 hours of Quarter close, Year-end close"


# --- approvals nobody may give ---------------------------------------------------------------------------------

UNAPPROVABLE = ("Nobody but the implementer (Ivan Implementer) holds CAB member: nobody can approve this change; "
                "choose another implementer.")


@pytest.fixture
def ivan(db):
    """The only CAB member."""
    return make_user("ivan", Role.CAB_MEMBER, first_name="Ivan", last_name="Implementer")


def test_a_draft_whose_implementer_alone_holds_the_role_it_needs_is_warned_before_submit(client, rita, ivan, api,
                                                                                         staging):
    change = make_change(rita, cis=[api], environment=staging, implementer=ivan)
    assert [(r.role.name, r.count) for r in approval_preview(change).requirements] == [("cab_member", 1)]
    assert UNAPPROVABLE in page(client, rita, change)
    assert ChangeRequest.objects.get(pk=change.pk).risk_score is None  # the preview wrote nothing

    change = submitted(change)
    assert change.status == S.CAB_REVIEW
    assert UNAPPROVABLE in page(client, rita, change)  # after submission too, until it is fixed

    change_request_update(actor=rita, change=change, implementer=make_user("ian", Role.REQUESTER))
    assert "Nobody but" not in page(client, rita, change)


def test_the_warning_names_the_requester_when_only_they_hold_the_role(client, api, staging):
    riya = make_user("riya", Role.REQUESTER, Role.CAB_MEMBER)
    change = submitted(make_change(riya, cis=[api], environment=staging))
    [gap] = approval_gaps(change, ApprovalState.of(change))
    assert gap.message == ("Nobody but the requester (riya) holds CAB member: nobody can approve this change; "
                           "ask an administrator to give CAB member to someone else.")


def test_a_role_nobody_holds_is_warned_and_a_team_grant_counts_as_holding_it(client, rita, api, staging):
    change = submitted(make_change(rita, cis=[api], environment=staging))
    [gap] = approval_gaps(change, ApprovalState.of(change))
    assert gap.message == ("Nobody holds CAB member: nobody can approve this change; "
                           "ask an administrator to give CAB member to someone else.")
    tara = make_user("tara")
    assign_perm("cmdb.approve_as_cab_member", tara, api.owner_team)
    assert approval_gaps(change, ApprovalState.of(change)) == []


def test_two_approvals_from_one_able_person_are_a_gap(client, rita, carla, ivan, api, staging):
    PolicyRequirement.objects.filter(role__name="cab_member").update(count=2)
    change = submitted(make_change(rita, cis=[api], environment=staging, implementer=ivan))
    [gap] = approval_gaps(change, ApprovalState.of(change))
    assert gap.message == ("CAB member must give 2 more approvals, and only Carla Cab may give one: nobody can "
                           "approve this change; choose another implementer.")


def test_only_those_who_can_act_on_it_are_told_who_can_approve(client, rita, ivan, api, staging, carla):
    change = submitted(make_change(rita, cis=[api], environment=staging, implementer=ivan))
    carla.is_active = False  # leaves ivan the only CAB member
    carla.save()
    other_cab = make_user("colin", Role.CAB_MEMBER)
    assert UNAPPROVABLE not in page(client, other_cab, change)  # colin may approve: no gap at all
    other_cab.delete()
    assert UNAPPROVABLE in page(client, rita, change)
    auditor = make_user("audrey", Role.AUDITOR)
    assert "Nobody but" not in page(client, auditor, change)  # reads the change, cannot change it


# --- why no buttons ------------------------------------------------------------------------------------------

def test_a_cab_member_who_may_not_decide_is_told_why_instead_of_seeing_no_buttons(client, rita, carla, ivan, api,
                                                                                  staging):
    change = submitted(make_change(rita, cis=[api], environment=staging, implementer=ivan))
    body = page(client, ivan, change)
    assert 'value="approve"' not in body
    assert re.search(r'id="decision-barred"><strong>You cannot decide on this change:</strong> '
                     r'You will implement this change: someone else must approve it\.', body)
    body = page(client, carla, change)
    assert 'value="approve"' in body and 'id="decision-barred"' not in body

    sre = make_user("sam", Role.SRE)  # holds no role this change asks for: nothing to decide, nothing said
    assert 'id="decision-barred"' not in page(client, sre, change)


def test_an_approver_whose_decision_is_recorded_is_told_so(client, rita, carla, api, staging):
    PolicyRequirement.objects.filter(role__name="cab_member").update(count=2)
    change = submitted(make_change(rita, cis=[api], environment=staging))
    approval_record(actor=carla, change=change, decision="approve")
    body = page(client, carla, change)
    assert "You have already decided on this revision of the change." in body
    assert 'value="approve"' not in body
