"""Rejecting a change says why, at every door (the service, the API, the page, the admin), and is confirmed on the
page in a step of its own; a rejected change asks for no more approvals."""

import html

import pytest
from django.contrib.messages import get_messages

from governance.changes.services import approval_record, change_request_transition
from governance.core.errors import InvalidInput
from governance.models import Approval, ChangeRequest
from governance.models import ChangeStatus as S
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def staging(db):
    return make_environment("staging", 2)


@pytest.fixture
def in_review(requester, staging):
    change = make_change(requester, cis=[make_ci("statements-api", team=make_team("payments"), criticality=3)],
                         environment=staging)
    change = change_request_transition(actor=requester, change=change, target=S.SUBMITTED)
    assert change.status == S.CAB_REVIEW
    return change


def status_of(change) -> str:
    return ChangeRequest.objects.get(pk=change.pk).status


@pytest.mark.parametrize("comment", ["", "   \n "])
def test_the_service_refuses_a_rejection_without_a_reason_on_the_comment_field(cab_member, in_review, comment):
    with pytest.raises(InvalidInput) as refused:
        approval_record(actor=cab_member, change=in_review, decision="reject", comment=comment)
    assert (refused.value.field, refused.value.code, refused.value.status) == ("comment", "required", 400)
    assert not Approval.objects.exists() and status_of(in_review) == S.CAB_REVIEW


def test_whoever_may_not_decide_is_refused_for_that_before_the_missing_reason(requester, in_review):
    with pytest.raises(Exception) as refused:
        approval_record(actor=requester, change=in_review, decision="reject")
    assert refused.value.code == "segregation_of_duties"


def test_the_api_refuses_a_rejection_without_a_reason_naming_comment(api, cab_member, in_review):
    url = f"/api/v1/changes/{in_review.number}/approvals/"
    response = api.as_user(cab_member).post(url, {"decision": "reject"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"code": "required", "field": "comment",
                                          "message": "Say why you reject the change: the requester is told."}]
    assert status_of(in_review) == S.CAB_REVIEW
    response = api.as_user(cab_member).post(url, {"decision": "reject", "comment": "No backout tested"},
                                            format="json")
    assert response.status_code == 201 and response.json()["change_status"] == "rejected"


def test_the_page_asks_for_a_reason_in_a_confirmation_step_of_its_own(client, cab_member, in_review):
    client.force_login(cab_member)
    body = client.get(f"/changes/{in_review.number}/").content.decode()
    approve_form = body.split('<form class="decide"', 1)[1].split("</form>", 1)[0]
    assert 'value="approve"' in approve_form and 'value="reject"' not in approve_form
    confirm = body.split('<details class="reject-confirm">', 1)[1].split("</details>", 1)[0]
    assert "<summary>Reject…</summary>" in confirm
    assert '<input type="hidden" name="decision" value="reject">' in confirm
    assert '<textarea name="comment" id="id_reject_comment" rows="3" required></textarea>' in confirm
    assert f'<button type="submit" class="danger">Reject {in_review.number}</button>' in confirm


def test_a_rejection_without_a_reason_is_refused_in_the_panel_with_the_confirmation_open(client, cab_member,
                                                                                         in_review):
    client.force_login(cab_member)
    response = client.post(f"/changes/{in_review.number}/decide/", {"decision": "reject", "comment": " "}, **HTMX)
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert "Say why you reject the change: the requester is told." in body
    assert '<details class="reject-confirm" open>' in body
    assert status_of(in_review) == S.CAB_REVIEW

    response = client.post(f"/changes/{in_review.number}/decide/", {"decision": "reject"})  # without htmx
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Say why you reject the change: the requester is told."]


def test_a_rejected_change_asks_for_no_more_approvals(client, cab_member, requester, in_review):
    client.force_login(cab_member)
    response = client.post(f"/changes/{in_review.number}/decide/",
                           {"decision": "reject", "comment": "No backout tested"}, **HTMX)
    assert response.status_code == 200
    for body in (response.content.decode(), client.get(f"/changes/{in_review.number}/").content.decode()):
        assert 'data-status="rejected"' in body
        assert "needs 1 more" not in body and "Still needed" not in body
        assert "Rejected: no further approval is asked for." in body
        assert "No backout tested" in body
        assert "Reject…" not in body


CHANGES = "/admin/governance/changerequest/"


def test_the_admin_rejects_only_after_asking_why(client, in_review):
    carlos = make_user("carlos", Role.ADMIN, Role.CAB_MEMBER, is_staff=True)
    client.force_login(carlos)
    asked = client.post(CHANGES, {"action": "reject_as_me", "_selected_action": [in_review.pk], "index": 0})
    assert asked.status_code == 200
    body = asked.content.decode()
    assert "say why" in body and f"{in_review.number}" in body and 'name="reason"' in body
    assert status_of(in_review) == S.CAB_REVIEW

    blank = client.post(CHANGES, {"action": "reject_as_me", "_selected_action": [in_review.pk], "confirm": "yes",
                                  "reason": "  "})
    assert blank.status_code == 200 and "This field is required." in blank.content.decode()
    assert status_of(in_review) == S.CAB_REVIEW

    done = client.post(CHANGES, {"action": "reject_as_me", "_selected_action": [in_review.pk], "confirm": "yes",
                                 "reason": "Not before the audit"}, follow=True)
    assert [str(m) for m in get_messages(done.wsgi_request)] == ["1 change(s) rejected by you."]
    approval = Approval.objects.get()
    assert (approval.approver, approval.decision, approval.comment) == (carlos, "reject", "Not before the audit")
    assert status_of(in_review) == S.REJECTED
