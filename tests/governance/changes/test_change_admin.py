"""The change models in the admin: read-only records, and actions that go through the change services."""

import pytest
from django.contrib.admin import site
from django.contrib.messages import get_messages

from governance.changes.admin import MOVE_ACTIONS
from governance.changes.services import approval_record, change_request_transition
from governance.changes.workflow import TRANSITIONS, Mover
from governance.models import Approval, CabMeeting, ChangeStatusChange, StandardChangeTemplate
from governance.models import ChangeStatus as S
from tests.factories import make_change, make_ci, make_user

pytestmark = pytest.mark.django_db

CHANGES = "/admin/governance/changerequest/"


def in_review(requester, environment):
    change = make_change(requester, cis=[make_ci()], environment=environment)
    return change_request_transition(actor=requester, change=change, target=S.SUBMITTED)


def run_action(client, action: str, *changes, **answers):
    """Run an admin action on these changes; `answers` are what an action that asks first (rejecting asks
    why) is given on its confirmation page."""
    data = {"action": action, "_selected_action": [c.pk for c in changes], **(answers or {"index": 0})}
    response = client.post(CHANGES, data, follow=True)
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_an_admin_who_requested_a_change_cannot_approve_it_with_the_admin_action(client, staging):
    admin = make_user("adam", "admin", "requester", "cab_member", is_staff=True)
    change = in_review(admin, staging)
    client.force_login(admin)
    shown = run_action(client, "approve_as_me", change)
    assert shown == [f"{change.number}: You requested this change: someone else must approve it."]
    assert not Approval.objects.exists()
    change.refresh_from_db()
    assert change.status == S.CAB_REVIEW


def test_an_admin_who_requested_a_change_cannot_reject_it_either(client, staging):
    admin = make_user("adam", "admin", "requester", "cab_member", is_staff=True)
    change = in_review(admin, staging)
    client.force_login(admin)
    assert run_action(client, "reject_as_me", change, confirm="yes", reason="not like this") == [
        f"{change.number}: You requested this change: someone else must approve it."]
    assert not Approval.objects.exists()


def test_a_cab_member_approves_through_the_admin_action_as_themselves(client, requester, staging):
    change = in_review(requester, staging)
    carlos = make_user("carlos", "admin", "cab_member", is_staff=True)
    client.force_login(carlos)
    assert run_action(client, "approve_as_me", change) == ["1 change(s) approved by you."]
    approval = Approval.objects.get()
    assert (approval.change, approval.approver, approval.decision, approval.role.name) == (
        change, carlos, "approve", "cab_member")
    change.refresh_from_db()
    assert change.status == S.APPROVED


def test_an_admin_without_an_approver_role_cannot_approve(client, requester, staging):
    change = in_review(requester, staging)
    adam = make_user("adam", "admin", is_staff=True)
    client.force_login(adam)
    [shown] = run_action(client, "approve_as_me", change)
    assert shown.startswith(f"{change.number}: Your approval cannot count")
    assert not Approval.objects.exists()


def test_the_status_cannot_be_edited_through_the_change_form(client, requester, staging):
    change = in_review(requester, staging)
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = f"{CHANGES}{change.pk}/change/"
    form = client.get(url)
    assert form.status_code == 200
    assert b'name="status"' not in form.content
    client.post(url, {"status": S.APPROVED, "title": "renamed", "_save": "Save"})
    change.refresh_from_db()
    assert (change.status, change.title) == (S.CAB_REVIEW, "Upgrade payments-api")
    assert not ChangeStatusChange.objects.filter(change=change, to_status=S.APPROVED).exists()


def test_changes_are_not_added_or_deleted_in_the_admin(client):
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(f"{CHANGES}add/").status_code == 403


def test_approvals_are_read_only_in_the_admin_even_for_a_superuser(client, requester, cab_member, staging):
    change = in_review(requester, staging)
    approval = approval_record(actor=cab_member, change=change, decision="approve")
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get("/admin/governance/approval/add/").status_code == 403
    assert client.get("/admin/governance/approval/").status_code == 200
    page = client.get(f"/admin/governance/approval/{approval.pk}/change/")
    assert page.status_code == 200
    assert b'name="decision"' not in page.content
    assert client.post(f"/admin/governance/approval/{approval.pk}/change/",
                       {"decision": "reject", "comment": "forged"}).status_code == 403
    assert client.post(f"/admin/governance/approval/{approval.pk}/delete/", {"post": "yes"}).status_code == 403
    approval.refresh_from_db()
    assert (approval.decision, approval.comment) == ("approve", "")


def test_the_change_page_shows_its_approvals_and_moves_read_only(client, requester, cab_member, staging):
    change = in_review(requester, staging)
    approval_record(actor=cab_member, change=change, decision="approve", comment="looks safe")
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = f"{CHANGES}{change.pk}/change/"
    page = client.get(url).content.decode()
    assert "looks safe" in page
    assert "every required approval given" in page
    assert 'name="approvals-0-decision"' not in page
    assert 'name="approvals-0-comment"' not in page
    approval = Approval.objects.get()
    client.post(url, {"approvals-TOTAL_FORMS": "1", "approvals-INITIAL_FORMS": "1", "approvals-0-id": approval.pk,
                      "approvals-0-change": change.pk, "approvals-0-decision": "reject",
                      "approvals-0-comment": "forged", "approvals-0-DELETE": "on", "_save": "Save"})
    approval.refresh_from_db()
    assert (approval.decision, approval.comment) == ("approve", "looks safe")


def test_a_release_manager_schedules_through_the_admin_action_and_a_requester_cannot(client, requester, cab_member,
                                                                                     staging):
    change = in_review(requester, staging)
    approval_record(actor=cab_member, change=change, decision="approve")
    requester.is_staff = True
    requester.save()
    client.force_login(requester)
    assert run_action(client, f"move_to_{S.SCHEDULED}", change) == [
        f"{change.number}: Only a release manager may move this change to Scheduled."]
    change.refresh_from_db()
    assert change.status == S.APPROVED

    rachel = make_user("rachel", "release_manager", is_staff=True)
    client.force_login(rachel)
    assert run_action(client, f"move_to_{S.SCHEDULED}", change) == ["1 change(s) moved to Scheduled."]
    change.refresh_from_db()
    assert change.status == S.SCHEDULED
    move = ChangeStatusChange.objects.filter(change=change).last()
    assert (move.from_status, move.to_status, move.actor) == (S.APPROVED, S.SCHEDULED, rachel)


def test_every_move_a_person_may_make_has_an_admin_action():
    person_targets = {to for (_, to), movers in TRANSITIONS.items() if movers - {Mover.SYSTEM}}
    assert {action.__name__ for action in MOVE_ACTIONS} == {f"move_to_{to}" for to in person_targets}


def test_admin_pages_of_the_change_models_open(client, requester, staging):
    change = in_review(requester, staging)
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    for url in (CHANGES, f"{CHANGES}{change.pk}/change/", "/admin/governance/approvalpolicy/",
                "/admin/governance/approvalpolicy/add/", "/admin/governance/standardchangetemplate/add/",
                "/admin/governance/cabmeeting/", "/admin/governance/cabmeeting/add/"):
        assert client.get(url).status_code == 200, url


def test_a_cab_meeting_added_in_the_admin_gets_its_agenda_from_the_service(client, requester, staging):
    change = in_review(requester, staging)
    rachel = make_user("rachel", "release_manager", "admin", is_staff=True)
    client.force_login(rachel)
    response = client.post("/admin/governance/cabmeeting/add/", {
        "title": "Weekly CAB", "starts_at_0": "2030-01-08", "starts_at_1": "10:00:00", "minutes": "",
        "agenda-TOTAL_FORMS": "0", "agenda-INITIAL_FORMS": "0", "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    meeting = CabMeeting.objects.get()
    assert meeting.organiser == rachel
    assert list(meeting.agenda.values_list("change", flat=True)) == [change.pk]


def test_a_cab_meeting_is_added_and_edited_in_the_admin_through_the_meeting_services(client, requester, staging):
    change = in_review(requester, staging)
    rachel = make_user("rachel", "release_manager", "admin", is_staff=True)
    carlos = make_user("carlos", "cab_member")
    client.force_login(rachel)
    form = {"title": "Weekly CAB", "starts_at_0": "2030-01-08", "starts_at_1": "10:00:00", "minutes": "Agenda sent.",
            "attendees": [carlos.pk], "agenda-TOTAL_FORMS": "0", "agenda-INITIAL_FORMS": "0", "_save": "Save"}
    assert client.post("/admin/governance/cabmeeting/add/", form).status_code == 302
    meeting = CabMeeting.objects.get()
    assert (meeting.minutes, list(meeting.attendees.all())) == ("Agenda sent.", [carlos])

    edited = {**form, "title": "Weekly CAB (moved)", "starts_at_1": "14:00:00", "minutes": "Quorum reached.",
              "attendees": [rachel.pk], "agenda-TOTAL_FORMS": "1", "agenda-INITIAL_FORMS": "1",
              "agenda-0-id": meeting.agenda.get().pk, "agenda-0-meeting": meeting.pk}
    response = client.post(f"/admin/governance/cabmeeting/{meeting.pk}/change/", edited)
    assert response.status_code == 302, response.content.decode()[:3000]
    meeting = CabMeeting.objects.get()
    assert (meeting.title, meeting.starts_at.hour, meeting.minutes) == ("Weekly CAB (moved)", 14, "Quorum reached.")
    assert list(meeting.attendees.all()) == [rachel]
    assert (meeting.organiser, list(meeting.agenda.values_list("change", flat=True))) == (rachel, [change.pk])


TEMPLATES = "/admin/governance/standardchangetemplate/"


def test_a_template_is_written_in_the_admin_by_the_template_services_only_when_saved(client, rf, staging):
    adam = make_user("adam", "admin", is_staff=True)
    client.force_login(adam)
    ci = make_ci()
    form = {"name": "Rotate TLS certificates", "description": "", "implementation_plan": "rotate",
            "backout_plan": "restore", "active": "on", "ci_types": ["host"], "max_risk_level": "medium",
            "cis": [ci.pk], "environments": [staging.pk], "_save": "Save"}
    request = rf.post(f"{TEMPLATES}add/")
    request.user = adam
    validating = site._registry[StandardChangeTemplate].get_form(request)(data=form)
    assert validating.is_valid(), validating.errors
    assert not StandardChangeTemplate.objects.exists()  # validating writes nothing

    response = client.post(f"{TEMPLATES}add/", form, follow=True)
    template = StandardChangeTemplate.objects.get()
    assert (template.version, template.approved, template.edited_by) == (1, False, adam)
    assert (list(template.cis.all()), list(template.environments.all())) == ([ci], [staging])
    assert "Version 1 of Rotate TLS certificates awaits approval" in response.content.decode()

    assert client.post(f"{TEMPLATES}{template.pk}/change/", {**form, "max_risk_level": "low"}).status_code == 302
    template.refresh_from_db()
    assert (template.max_risk_level, template.version) == ("low", 2)  # the update service's new version


def test_a_template_form_its_actor_may_not_write_shows_why_and_writes_nothing(rf, requester):
    request = rf.post(f"{TEMPLATES}add/")
    request.user = make_user("adam", "admin", is_staff=True)
    form_class = site._registry[StandardChangeTemplate].get_form(request)
    form_class.actor = requester  # as if the role was taken away since the page was served
    form = form_class(data={"name": "Restart a pod", "max_risk_level": "low", "ci_types": ["service"]})
    assert not form.is_valid()
    assert form.non_field_errors() == ["Administrators write standard change templates."]
    assert not StandardChangeTemplate.objects.exists()
