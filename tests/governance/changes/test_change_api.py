"""The changes API under /api/v1/: raising and editing changes, moving them, approving them under segregation
of duties, the approval policies, who may do what, and what a list costs."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.changes.services import approval_record
from governance.models import (
    Approval,
    ApprovalPolicy,
    ChangeRequest,
    ChangeStatus,
    PolicyRequirement,
)
from governance.roles import Role
from tests.factories import make_change, make_ci, make_template, make_user
from tests.governance.helpers import submit

pytestmark = pytest.mark.django_db

CHANGES = "/api/v1/changes/"
POLICIES = "/api/v1/policies/"
CAB_POLICY = "Normal changes: CAB review"


def change_url(change, suffix: str = "") -> str:
    return f"{CHANGES}{change.number}/{suffix}"


def policy_url(policy) -> str:
    return f"{POLICIES}{policy.pk}/"


def errors(response) -> list[dict]:
    """The errors of a response, after checking it has the one error shape."""
    body = response.json()
    assert set(body) == {"errors"}, body
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"code", "message", "field"}, error
        assert error["message"]
    return body["errors"]


def names_field(response, field: str) -> bool:
    """The error names `field` (or an item of it, as in `requirements[0].role`)."""
    return any(e["field"] is not None and re.split(r"[.\[]", e["field"])[0] == field for e in errors(response))


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(row["number"] for row in response.json()["results"])


def later(hours: float) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


@pytest.fixture
def draft(requester, payments_api, staging):
    """A complete draft touching the payments team's CI; the default policies ask one CAB member."""
    return make_change(requester, cis=[payments_api], environment=staging)


@pytest.fixture
def in_review(draft):
    change = submit(draft)
    assert change.status == ChangeStatus.CAB_REVIEW
    return change


@pytest.fixture
def approved(in_review, cab_member):
    approval_record(actor=cab_member, change=in_review, decision="approve")
    in_review.refresh_from_db()
    assert in_review.status == ChangeStatus.APPROVED
    return in_review


@pytest.fixture
def quorum_of_two(db):
    """The CAB policy asks two CAB members instead of one."""
    PolicyRequirement.objects.filter(policy__name=CAB_POLICY, role__name=Role.CAB_MEMBER).update(count=2)


@pytest.fixture
def second_cab_member(db):
    return make_user("second_cab_member", Role.CAB_MEMBER)


def new_change(**fields) -> dict:
    start = timezone.now() + timedelta(days=2)
    return {
        "title": "Upgrade payments-api to 4.2", "change_type": "normal", "affected_cis": ["payments-api"],
        "environment": "staging", "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(hours=2)).isoformat(), "implementation_plan": "helm upgrade",
        "backout_plan": "helm rollback", "test_evidence": "pipeline 812 green", **fields,
    }


# Raising a change


def test_a_requester_raises_a_draft_change_naming_cis_environment_and_implementer(
        api, requester, payments_api, staging):
    make_user("ivan", Role.REQUESTER)
    response = api.as_user(requester).post(CHANGES, new_change(implementer="ivan"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert re.fullmatch(r"CHG\d{7}", body["number"])
    assert body["status"] == "draft"
    assert body["requester"] == "requester"
    assert body["implementer"] == "ivan"
    assert body["affected_cis"] == ["payments-api"]
    assert body["environment"] == "staging"
    change = ChangeRequest.objects.get(number=body["number"])
    assert change.requester == requester
    assert list(change.affected_cis.all()) == [payments_api]


def test_each_new_change_gets_its_own_number(api, requester, payments_api, staging):
    client = api.as_user(requester)
    first = client.post(CHANGES, new_change(), format="json").json()["number"]
    second = client.post(CHANGES, new_change(), format="json").json()["number"]
    assert first != second


def test_cis_are_named_ignoring_case(api, requester, payments_api, staging):
    response = api.as_user(requester).post(CHANGES, new_change(affected_cis=["PAYMENTS-API"]), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["affected_cis"] == ["payments-api"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"affected_cis": ["no-such-ci"]}, "affected_cis"),
    ({"affected_cis": "payments-api"}, "affected_cis"),
    ({"environment": "moon"}, "environment"),
    ({"implementer": "nobody"}, "implementer"),
    ({"template": "no such template"}, "template"),
    ({"planned_start": 5}, "planned_start"),
    ({"planned_end": "next tuesday"}, "planned_end"),
    ({"planned_start": later(50), "planned_end": later(49)}, "planned_end"),
    ({"title": ""}, "title"),
    ({"change_type": "urgent"}, "change_type"),
    ({"feature_flags": "dark-launch"}, "feature_flags"),
    ({"rollback_latency_p99_ms": -1}, "rollback_latency_p99_ms"),
    ({"priority": "high"}, "priority"),
    ({"status": "approved"}, "status"),
    ({"risk_level": "low"}, "risk_level"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
        api, requester, payments_api, staging, fields, field):
    response = api.as_user(requester).post(CHANGES, new_change(**fields), format="json")
    assert response.status_code == 400, response.content
    assert names_field(response, field), response.json()
    assert not ChangeRequest.objects.exists()


def test_a_body_that_is_not_an_object_is_refused(api, requester):
    response = api.as_user(requester).post(CHANGES, ["payments-api"], format="json")
    assert response.status_code == 400
    assert not ChangeRequest.objects.exists()


def test_a_cab_member_cannot_raise_a_change(api, cab_member, payments_api, staging):
    response = api.as_user(cab_member).post(CHANGES, new_change(), format="json")
    assert response.status_code == 403
    assert not ChangeRequest.objects.exists()


# Reading one change


def test_a_change_is_read_by_number_with_its_risk_checklist_conflicts_and_history(
        api, cab_member, requester, in_review, payments_api, staging):
    overlapping = submit(make_change(requester, cis=[payments_api], environment=staging,
                                     title="Rotate payments-api keys", start_in_hours=48.5))
    response = api.as_user(cab_member).get(change_url(in_review))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["number"] == in_review.number
    assert body["status"] == "cab_review"
    assert isinstance(body["risk_score"], int)
    assert body["risk_level"] == "low"
    assert {"factor", "detail", "points"} <= set(body["risk_factors"][0])
    assert body["recommended_strategy"] == "rolling"
    assert body["recommended_strategy_reason"]
    assert body["requirements"] == [{"role": "cab_member", "needed": 1, "given": 0, "done": False,
                                     "policies": [CAB_POLICY], "approvals": []}]
    assert body["conflicts"] == [{"number": overlapping.number, "title": "Rotate payments-api keys"}]
    assert [(h["from_status"], h["to_status"], h["actor"]) for h in body["status_history"]] == [
        ("draft", "submitted", "requester"), ("submitted", "assessed", None), ("assessed", "cab_review", None),
    ]
    assert body["awaiting_me"] is True


def test_reading_an_unknown_change_number_is_a_404_in_the_error_shape(api, cab_member):
    response = api.as_user(cab_member).get(f"{CHANGES}CHG9999999/")
    assert response.status_code == 404
    assert errors(response)[0]["field"] is None


def test_a_change_cannot_be_replaced_or_deleted_through_the_api(api, requester, draft):
    client = api.as_user(requester)
    assert client.put(change_url(draft), new_change(), format="json").status_code == 405
    assert client.delete(change_url(draft)).status_code == 405
    assert ChangeRequest.objects.filter(pk=draft.pk).exists()


# Listing and filtering


@pytest.fixture
def board(requester, team, search_team, payments_api, search_api, staging, prod):
    """Three changes that differ in status, type, risk, environment, team, CI and window."""
    upgrade = make_change(requester, cis=[payments_api], environment=staging, title="Upgrade payments-api",
                          start_in_hours=48)
    hotfix = make_change(requester, cis=[search_api], environment=prod, change_type="emergency",
                         title="Hotfix search ranking", start_in_hours=240, risk_level="high")
    certificates = make_change(requester, cis=[payments_api, search_api], environment=staging,
                               title="Rotate certificates", start_in_hours=72, risk_level="low",
                               status=ChangeStatus.CANCELLED)
    return {"upgrade": upgrade, "hotfix": hotfix, "certificates": certificates}


@pytest.mark.parametrize(("query", "expected"), [
    ({}, ["upgrade", "hotfix", "certificates"]),
    ({"status": "draft"}, ["upgrade", "hotfix"]),
    ({"status": ["cancelled", "approved"]}, ["certificates"]),
    ({"change_type": "emergency"}, ["hotfix"]),
    ({"risk_level": "high"}, ["hotfix"]),
    ({"environment": "prod"}, ["hotfix"]),
    ({"team": "search"}, ["hotfix", "certificates"]),
    ({"ci": "PAYMENTS-API"}, ["upgrade", "certificates"]),
    ({"window_from": later(49), "window_to": later(73)}, ["upgrade", "certificates"]),
    ({"window_from": later(100)}, ["hotfix"]),
    ({"search": "hotfix"}, ["hotfix"]),
    ({"search": "payments", "status": "draft"}, ["upgrade"]),
])
def test_the_change_list_filters_by_what_people_look_for(api, cab_member, board, query, expected):
    response = api.as_user(cab_member).get(CHANGES, query)
    assert numbers(response) == sorted(board[name].number for name in expected)


def test_a_change_is_found_by_its_number(api, cab_member, board):
    response = api.as_user(cab_member).get(CHANGES, {"search": board["hotfix"].number})
    assert numbers(response) == [board["hotfix"].number]


def test_a_list_row_names_cis_environment_and_people(api, cab_member, board):
    response = api.as_user(cab_member).get(CHANGES, {"ci": "search-api", "status": "cancelled"})
    [row] = response.json()["results"]
    assert row["affected_cis"] == ["payments-api", "search-api"]
    assert row["environment"] == "staging"
    assert row["requester"] == "requester"
    assert row["risk_level"] == "low"


@pytest.mark.parametrize(("query", "field"), [
    ({"environment": "moon"}, "environment"),
    ({"team": "nobody"}, "team"),
    ({"status": "lost"}, "status"),
    ({"window_from": "soon"}, "window_from"),
])
def test_a_bad_filter_is_refused_naming_it(api, cab_member, board, query, field):
    response = api.as_user(cab_member).get(CHANGES, query)
    assert response.status_code == 400
    assert names_field(response, field)


def test_the_change_list_is_paginated(api, cab_member, board):
    body = api.as_user(cab_member).get(CHANGES, {"page_size": 2}).json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def _grow(requester, count: int, cis, environment) -> None:
    for n in range(count):
        implementer = make_user(None, Role.REQUESTER)
        change = make_change(requester, cis=cis, environment=environment, implementer=implementer,
                             title=f"Change {n}")
        if n % 3 == 0:
            submit(change)


@pytest.mark.parametrize("url", [CHANGES, f"{CHANGES}?awaiting_me=true&team=payments&search=change"])
def test_the_change_list_keeps_a_fixed_number_of_queries_as_changes_grow(
        api, cab_member, requester, payments_api, search_api, staging, django_assert_max_num_queries, url):
    client = api.as_user(cab_member)
    client.get(CHANGES)  # the token's first use stamps it; later calls do not
    _grow(requester, 3, [payments_api, search_api], staging)
    budget = _queries(client, url)
    _grow(requester, 27, [payments_api, search_api], staging)
    with django_assert_max_num_queries(budget):
        response = client.get(url)
    assert response.status_code == 200
    if "?" not in url:
        assert response.json()["count"] == 30


# Waiting for me


@pytest.fixture
def queue(requester, cab_member, payments_api, staging):
    """A change awaiting the CAB, a draft, and one in review that the CAB member raised themselves."""
    waiting = submit(make_change(requester, cis=[payments_api], environment=staging, title="Waiting"))
    still_draft = make_change(requester, cis=[payments_api], environment=staging, title="Draft")
    own = submit(make_change(cab_member, cis=[payments_api], environment=staging, title="Own"))
    return {"waiting": waiting, "draft": still_draft, "own": own}


def test_awaiting_me_shows_a_cab_member_only_the_changes_needing_their_approval(api, cab_member, queue):
    response = api.as_user(cab_member).get(CHANGES, {"awaiting_me": "true"})
    assert numbers(response) == [queue["waiting"].number]
    assert response.json()["results"][0]["awaiting_me"] is True


def test_awaiting_me_puts_the_changes_needing_me_first(api, cab_member, queue):
    response = api.as_user(cab_member).get(CHANGES, {"ordering": "-awaiting_me"})
    rows = response.json()["results"]
    assert rows[0]["number"] == queue["waiting"].number
    assert [row["awaiting_me"] for row in rows] == [True, False, False]


def test_a_change_i_have_approved_no_longer_awaits_me(api, cab_member, second_cab_member, quorum_of_two, in_review):
    client = api.as_user(cab_member)
    assert numbers(client.get(CHANGES, {"awaiting_me": "true"})) == [in_review.number]
    assert client.post(change_url(in_review, "approvals/"), {"decision": "approve"}, format="json").status_code == 201
    assert numbers(client.get(CHANGES, {"awaiting_me": "true"})) == []
    assert numbers(api.as_user(second_cab_member).get(CHANGES, {"awaiting_me": "true"})) == [in_review.number]


def test_awaiting_me_false_hides_the_changes_needing_me(api, cab_member, queue):
    response = api.as_user(cab_member).get(CHANGES, {"awaiting_me": "false"})
    assert numbers(response) == sorted([queue["draft"].number, queue["own"].number])


def test_nothing_awaits_someone_who_approves_nothing(api, auditor, queue):
    assert numbers(api.as_user(auditor).get(CHANGES, {"awaiting_me": "true"})) == []


# Editing


def test_the_requester_edits_anything_while_the_change_is_a_draft(api, requester, draft, search_api, prod):
    response = api.as_user(requester).patch(change_url(draft), {
        "title": "Upgrade search-api", "backout_plan": "redeploy 4.1", "affected_cis": ["search-api"],
        "environment": "prod", "change_type": "emergency",
    }, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["affected_cis"] == ["search-api"]
    draft.refresh_from_db()
    assert (draft.title, draft.backout_plan, draft.environment, draft.change_type) == (
        "Upgrade search-api", "redeploy 4.1", prod, "emergency")
    assert list(draft.affected_cis.all()) == [search_api]


def test_only_the_requester_or_a_release_manager_edits_a_change(api, draft, release_manager):
    someone_else = make_user("someone_else", Role.REQUESTER)
    response = api.as_user(someone_else).patch(change_url(draft), {"title": "Mine now"}, format="json")
    assert response.status_code == 403
    response = api.as_user(release_manager).patch(change_url(draft), {"title": "Tidied"}, format="json")
    assert response.status_code == 200
    draft.refresh_from_db()
    assert draft.title == "Tidied"


def test_an_edit_with_bad_input_is_refused_and_changes_nothing(api, requester, draft):
    response = api.as_user(requester).patch(change_url(draft), {
        "title": "Changed", "planned_start": later(80), "planned_end": later(79)}, format="json")
    assert response.status_code == 400
    assert names_field(response, "planned_end")
    draft.refresh_from_db()
    assert draft.title == "Upgrade payments-api"


def test_after_submission_a_fixed_field_cannot_be_changed(api, requester, in_review):
    response = api.as_user(requester).patch(change_url(in_review), {"backout_plan": "pray"}, format="json")
    assert response.status_code == 409
    assert names_field(response, "backout_plan")
    in_review.refresh_from_db()
    assert in_review.backout_plan == "helm rollback"


def test_after_submission_the_title_can_still_be_reworded(api, requester, in_review):
    response = api.as_user(requester).patch(change_url(in_review), {"title": "Upgrade payments-api to 4.2"},
                                            format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cab_review"


def test_moving_the_window_of_an_approved_change_sends_it_back_to_cab_review(api, requester, cab_member, approved):
    response = api.as_user(requester).patch(change_url(approved), {
        "planned_start": later(72), "planned_end": later(74)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cab_review"
    assert body["revision"] == 2
    [requirement] = body["requirements"]
    assert (requirement["given"], requirement["done"]) == (0, False)  # the old approval no longer counts
    [old] = api.as_user(cab_member).get(change_url(approved, "approvals/")).json()
    assert (old["revision"], old["counts"]) == (1, False)
    again = api.as_user(cab_member).post(change_url(approved, "approvals/"), {"decision": "approve"}, format="json")
    assert again.status_code == 201
    assert again.json()["change_status"] == "approved"


@pytest.mark.parametrize("edit", [
    {"environment": "prod"},
    {"affected_cis": ["payments-api", "search-api"]},
    {"planned_end": later(51)},
])
def test_changing_what_was_approved_makes_the_approvals_stale(api, requester, approved, prod, search_api, edit):
    response = api.as_user(requester).patch(change_url(approved), edit, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["revision"]) == ("cab_review", 2)
    assert all(not r["done"] for r in body["requirements"])


def test_rewording_an_approved_change_keeps_its_approval(api, requester, approved):
    response = api.as_user(requester).patch(change_url(approved), {"description": "clearer"}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["revision"]) == ("approved", 1)


def test_a_closed_change_can_no_longer_be_edited(api, requester, draft):
    ChangeRequest.objects.filter(pk=draft.pk).update(status=ChangeStatus.CLOSED)
    response = api.as_user(requester).patch(change_url(draft), {"title": "Late"}, format="json")
    assert response.status_code == 409


# Moving a change through its lifecycle


def transition(client, change, target: str, reason: str = ""):
    return client.post(change_url(change, "transitions/"), {"target": target, "reason": reason}, format="json")


def test_the_requester_submits_a_complete_change_and_it_goes_to_cab_review(api, requester, draft):
    response = transition(api.as_user(requester), draft, "submitted", "ready")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cab_review"
    assert response.json()["status_history"][0]["reason"] == "ready"


def test_submitting_without_a_backout_plan_is_refused_naming_what_is_missing(api, requester, payments_api, staging):
    change = make_change(requester, cis=[payments_api], environment=staging, backout_plan="")
    response = transition(api.as_user(requester), change, "submitted")
    assert response.status_code == 409
    [error] = errors(response)
    assert error["code"] == "transition_not_allowed"
    assert "a backout plan" in error["message"]
    change.refresh_from_db()
    assert change.status == ChangeStatus.DRAFT


def test_a_requester_cannot_schedule_their_approved_change(api, requester, approved):
    response = transition(api.as_user(requester), approved, "scheduled")
    assert response.status_code == 409
    assert "Only a release manager" in errors(response)[0]["message"]
    approved.refresh_from_db()
    assert approved.status == ChangeStatus.APPROVED


def test_a_release_manager_schedules_an_approved_change(api, release_manager, approved):
    response = transition(api.as_user(release_manager), approved, "scheduled", "CAB 12 March")
    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"


@pytest.mark.parametrize("target", ["approved", "rejected", "draft"])
def test_nobody_makes_a_move_that_changeboard_makes_by_itself(api, requester, release_manager, in_review, target):
    for client in (api.as_user(requester), api.as_user(release_manager)):
        response = transition(client, in_review, target)
        assert response.status_code == 409
        assert "by itself" in errors(response)[0]["message"]
    in_review.refresh_from_db()
    assert in_review.status == ChangeStatus.CAB_REVIEW


def test_a_move_the_lifecycle_does_not_have_is_refused_with_the_reason(api, requester, draft):
    response = transition(api.as_user(requester), draft, "completed")
    assert response.status_code == 409
    assert errors(response)[0]["message"] == "A change cannot go from Draft to Completed."


def test_implementing_before_the_window_opens_is_refused(api, release_manager, approved):
    assert transition(api.as_user(release_manager), approved, "scheduled").status_code == 200
    response = transition(api.as_user(release_manager), approved, "implementing")
    assert response.status_code == 409
    assert "has not opened yet" in errors(response)[0]["message"]


def test_someone_without_a_part_in_the_change_cannot_cancel_it(api, cab_member, auditor, draft):
    assert transition(api.as_user(cab_member), draft, "cancelled").status_code == 409
    assert transition(api.as_user(auditor), draft, "cancelled").status_code == 403  # an auditor writes nothing
    draft.refresh_from_db()
    assert draft.status == ChangeStatus.DRAFT


def test_the_requester_cancels_their_change(api, requester, in_review):
    response = transition(api.as_user(requester), in_review, "cancelled", "not needed")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(("body", "field"), [
    ({"target": "finished"}, "target"),
    ({}, "target"),
    ({"target": "submitted", "force": True}, "force"),
])
def test_a_bad_transition_request_is_refused_naming_the_field(api, requester, draft, body, field):
    response = api.as_user(requester).post(change_url(draft, "transitions/"), body, format="json")
    assert response.status_code == 400
    assert names_field(response, field)


# Approving


def approve(client, change, decision: str = "approve", comment: str = ""):
    return client.post(change_url(change, "approvals/"), {"decision": decision, "comment": comment}, format="json")


def test_a_cab_member_approves_a_change_in_review_and_it_is_approved(api, cab_member, in_review):
    response = approve(api.as_user(cab_member), in_review, comment="looks safe")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["approver"], body["decision"], body["role"], body["comment"]) == (
        "cab_member", "approve", "cab_member", "looks safe")
    assert body["change_status"] == "approved"
    in_review.refresh_from_db()
    assert in_review.status == ChangeStatus.APPROVED


def test_a_requester_cannot_approve_their_own_change_even_as_a_cab_member(api, payments_api, staging):
    both = make_user("both", Role.REQUESTER, Role.CAB_MEMBER)
    change = submit(make_change(both, cis=[payments_api], environment=staging))
    response = approve(api.as_user(both), change)
    assert response.status_code == 403
    assert errors(response)[0]["code"] == "segregation_of_duties"
    assert not Approval.objects.exists()


def test_the_implementer_cannot_approve_the_change(api, requester, cab_member, payments_api, staging):
    change = submit(make_change(requester, cis=[payments_api], environment=staging, implementer=cab_member))
    response = approve(api.as_user(cab_member), change)
    assert response.status_code == 403
    assert errors(response)[0]["code"] == "segregation_of_duties"
    change.refresh_from_db()
    assert change.status == ChangeStatus.CAB_REVIEW


# An auditor is refused at the door, as for any write; the others by the approval's own rule.
@pytest.mark.parametrize(("role", "code"), [(Role.RELEASE_MANAGER, "role_not_needed"), (Role.SRE, "role_not_needed"),
                                            (Role.AUDITOR, "permission_denied")])
def test_someone_without_a_role_the_change_needs_cannot_approve_it(api, in_review, role, code):
    user = make_user(f"a_{role}", role)
    response = approve(api.as_user(user), in_review)
    assert response.status_code == 403
    assert errors(response)[0]["code"] == code
    assert not Approval.objects.exists()


def test_deciding_twice_on_the_same_revision_is_a_conflict(api, cab_member, quorum_of_two, in_review):
    client = api.as_user(cab_member)
    assert approve(client, in_review).status_code == 201
    response = approve(client, in_review)
    assert response.status_code == 409
    assert errors(response)[0]["code"] == "already_decided"
    assert Approval.objects.count() == 1


def test_approving_a_change_that_is_not_in_review_is_a_conflict(api, cab_member, draft):
    response = approve(api.as_user(cab_member), draft)
    assert response.status_code == 409
    assert errors(response)[0]["code"] == "not_in_review"


def test_a_rejection_rejects_the_change(api, cab_member, in_review):
    response = approve(api.as_user(cab_member), in_review, "reject", "no backout tested")
    assert response.status_code == 201
    assert response.json()["change_status"] == "rejected"
    detail = api.as_user(cab_member).get(change_url(in_review)).json()
    assert detail["status"] == "rejected"
    assert "no backout tested" in detail["status_history"][-1]["reason"]


def test_a_policy_needing_two_cab_members_approves_the_change_on_the_second_approval(
        api, cab_member, second_cab_member, quorum_of_two, in_review):
    first = approve(api.as_user(cab_member), in_review)
    assert first.json()["change_status"] == "cab_review"
    detail = api.as_user(cab_member).get(change_url(in_review)).json()
    assert [(r["given"], r["needed"]) for r in detail["requirements"]] == [(1, 2)]
    second = approve(api.as_user(second_cab_member), in_review)
    assert second.json()["change_status"] == "approved"


def test_a_cab_member_for_one_team_approves_changes_to_that_teams_cis_only(
        api, requester, team, payments_api, search_api, staging):
    payments_cab = make_user("payments_cab", Role.REQUESTER)  # the role gives sight of changes, not approval
    assign_perm("cmdb.approve_as_cab_member", payments_cab, team)
    ours = submit(make_change(requester, cis=[payments_api], environment=staging))
    theirs = submit(make_change(requester, cis=[search_api], environment=staging))
    client = api.as_user(payments_cab)
    assert numbers(client.get(CHANGES, {"awaiting_me": "true"})) == [ours.number]
    allowed = approve(client, ours)
    assert allowed.status_code == 201, allowed.content
    assert allowed.json()["change_status"] == "approved"
    refused = approve(client, theirs)
    assert refused.status_code == 403
    assert errors(refused)[0]["code"] == "role_not_needed"


def test_a_team_role_granted_to_a_group_counts_for_sight_the_queue_and_approval(
        api, requester, team, payments_api, search_api, staging):
    """No global role at all: the group's grant on the team is what lets its members read, find and approve."""
    board = Group.objects.create(name="payments-board")
    assign_perm("cmdb.approve_as_cab_member", board, team)
    member = make_user("board_member")
    member.groups.add(board)
    ours = submit(make_change(requester, cis=[payments_api], environment=staging))
    submit(make_change(requester, cis=[search_api], environment=staging))
    client = api.as_user(member)
    assert numbers(client.get(CHANGES, {"awaiting_me": "true"})) == [ours.number]
    assert client.get(change_url(ours)).status_code == 200
    browser = Client()
    browser.force_login(member)
    assert browser.get(f"/changes/{ours.number}/").status_code == 200
    assert approve(client, ours).json()["change_status"] == "approved"


def test_approvals_are_listed_with_who_decided_and_for_which_revision(api, auditor, approved):
    response = api.as_user(auditor).get(change_url(approved, "approvals/"))
    assert response.status_code == 200
    assert [(a["approver"], a["decision"], a["revision"], a["counts"]) for a in response.json()] == [
        ("cab_member", "approve", 1, True)]


@pytest.mark.parametrize(("body", "field"), [
    ({"decision": "maybe"}, "decision"),
    ({}, "decision"),
    ({"decision": "approve", "role": "sre"}, "role"),
])
def test_a_bad_decision_is_refused_naming_the_field(api, cab_member, in_review, body, field):
    response = api.as_user(cab_member).post(change_url(in_review, "approvals/"), body, format="json")
    assert response.status_code == 400
    assert names_field(response, field)
    assert not Approval.objects.exists()


# Retrospective review of emergency changes


@pytest.fixture
def approved_emergency(requester, cab_member, payments_api, staging):
    change = submit(make_change(requester, cis=[payments_api], environment=staging, change_type="emergency"))
    approval_record(actor=cab_member, change=change, decision="approve")
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED
    return change


def test_a_cab_member_records_the_retrospective_of_an_approved_emergency_change(
        api, second_cab_member, approved_emergency):
    response = api.as_user(second_cab_member).post(change_url(approved_emergency, "retrospective/"),
                                                   {"notes": "the fix held; add an alert"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["retrospective_done_at"]
    assert response.json()["retrospective_notes"] == "the fix held; add an alert"


def test_the_requester_cannot_review_their_own_emergency_change(api, requester, approved_emergency):
    response = api.as_user(requester).post(change_url(approved_emergency, "retrospective/"),
                                           {"notes": "all good"}, format="json")
    assert response.status_code == 403
    approved_emergency.refresh_from_db()
    assert approved_emergency.retrospective_done_at is None


def test_a_retrospective_without_notes_is_refused_naming_the_field(api, cab_member, approved_emergency):
    response = api.as_user(cab_member).post(change_url(approved_emergency, "retrospective/"), {"notes": "  "},
                                            format="json")
    assert response.status_code == 400
    assert names_field(response, "notes")


def test_a_normal_change_has_no_retrospective(api, cab_member, approved):
    response = api.as_user(cab_member).post(change_url(approved, "retrospective/"), {"notes": "fine"},
                                            format="json")
    assert response.status_code == 409


# Approval policies


def new_policy(**fields) -> dict:
    return {"name": "PCI systems", "tags": ["pci"], "change_types": ["normal"],
            "requirements": [{"role": "sre", "count": 1}], **fields}


def test_anyone_who_may_view_changes_reads_the_policies_and_what_they_require(api, auditor):
    response = api.as_user(auditor).get(POLICIES)
    assert response.status_code == 200
    policies = {p["name"]: p for p in response.json()["results"]}
    assert policies[CAB_POLICY]["requirements"] == [{"role": "cab_member", "count": 1}]
    assert policies["High risk in production"]["risk_levels"] == ["high", "critical"]


def test_a_cab_member_reads_one_policy(api, cab_member):
    policy = ApprovalPolicy.objects.get(name="SOX scoped systems")
    response = api.as_user(cab_member).get(policy_url(policy))
    assert response.status_code == 200
    assert (response.json()["sox_scoped"], response.json()["requirements"]) == (
        True, [{"role": "compliance_officer", "count": 1}])


def test_an_admin_creates_a_policy_with_its_requirements(api, admin_user, prod):
    response = api.as_user(admin_user).post(POLICIES, new_policy(
        environments=["prod"], max_criticality=2,
        requirements=[{"role": "sre", "count": 2}, {"role": "business_owner", "count": 1}]), format="json")
    assert response.status_code == 201, response.content
    policy = ApprovalPolicy.objects.get(name="PCI systems")
    assert list(policy.environments.all()) == [prod]
    assert policy.max_criticality == 2
    assert sorted((r.role.name, r.count) for r in policy.requirements.all()) == [("business_owner", 1), ("sre", 2)]
    assert response.json()["requirements"] == [{"role": "sre", "count": 2}, {"role": "business_owner", "count": 1}]


def test_an_admin_replaces_a_policys_requirements_and_leaves_the_rest(api, admin_user):
    policy = ApprovalPolicy.objects.get(name=CAB_POLICY)
    response = api.as_user(admin_user).patch(policy_url(policy), {
        "requirements": [{"role": "cab_member", "count": 2}, {"role": "sre", "count": 1}]}, format="json")
    assert response.status_code == 200, response.content
    assert sorted((r.role.name, r.count) for r in policy.requirements.all()) == [("cab_member", 2), ("sre", 1)]
    response = api.as_user(admin_user).patch(policy_url(policy), {"active": False}, format="json")
    assert response.status_code == 200
    policy.refresh_from_db()
    assert policy.active is False
    assert policy.requirements.count() == 2


def test_an_admin_deletes_a_policy(api, admin_user):
    policy = ApprovalPolicy.objects.get(name=CAB_POLICY)
    assert api.as_user(admin_user).delete(policy_url(policy)).status_code == 204
    assert not ApprovalPolicy.objects.filter(pk=policy.pk).exists()


def test_a_policy_made_through_the_api_decides_what_later_changes_need(api, admin_user, requester, team, staging):
    assert api.as_user(admin_user).post(POLICIES, new_policy(), format="json").status_code == 201
    card_api = make_ci("card-api", team=team, tags=["pci"])
    change = submit(make_change(requester, cis=[card_api], environment=staging))
    detail = api.as_user(requester).get(change_url(change)).json()
    assert sorted(r["role"] for r in detail["requirements"]) == ["cab_member", "sre"]
    assert next(r for r in detail["requirements"] if r["role"] == "sre")["policies"] == ["PCI systems"]


@pytest.mark.parametrize("persona", ["cab_member", "release_manager", "auditor", "requester"])
def test_only_admins_write_policies(api, request, persona):
    client = api.as_user(request.getfixturevalue(persona))
    policy = ApprovalPolicy.objects.get(name=CAB_POLICY)
    assert client.post(POLICIES, new_policy(), format="json").status_code == 403
    assert client.patch(policy_url(policy), {"active": False}, format="json").status_code == 403
    assert client.delete(policy_url(policy)).status_code == 403
    policy.refresh_from_db()
    assert policy.active is True
    assert not ApprovalPolicy.objects.filter(name="PCI systems").exists()


@pytest.mark.parametrize(("fields", "field"), [
    ({"requirements": [{"role": "wizard", "count": 1}]}, "requirements"),
    ({"requirements": [{"role": "auditor", "count": 1}]}, "requirements"),
    ({"requirements": [{"role": "sre", "count": 0}]}, "requirements"),
    ({"requirements": [{"role": "sre", "count": 11}]}, "requirements"),
    ({"requirements": [{"role": "sre"}, {"role": "sre", "count": 2}]}, "requirements"),
    ({"requirements": []}, "requirements"),
    ({"risk_levels": ["extreme"]}, "risk_levels"),
    ({"change_types": ["urgent"]}, "change_types"),
    ({"max_criticality": 5}, "max_criticality"),
    ({"environments": ["moon"]}, "environments"),
    ({"name": CAB_POLICY}, "name"),
    ({"name": ""}, "name"),
    ({"priority": 1}, "priority"),
])
def test_a_bad_policy_is_refused_naming_the_field_and_nothing_is_written(api, admin_user, fields, field):
    before = ApprovalPolicy.objects.count(), PolicyRequirement.objects.count()
    response = api.as_user(admin_user).post(POLICIES, new_policy(**fields), format="json")
    assert response.status_code == 400, response.content
    assert names_field(response, field), response.json()
    assert (ApprovalPolicy.objects.count(), PolicyRequirement.objects.count()) == before


def test_an_unknown_role_error_names_the_requirement_and_lists_the_approver_roles(api, admin_user):
    response = api.as_user(admin_user).post(POLICIES, new_policy(requirements=[{"role": "wizard"}]), format="json")
    [error] = errors(response)
    assert re.fullmatch(r"requirements\W+0\W+role", error["field"])
    assert "cab_member" in error["message"]


def test_an_edit_that_breaks_a_policy_leaves_it_as_it_was(api, admin_user):
    policy = ApprovalPolicy.objects.get(name=CAB_POLICY)
    response = api.as_user(admin_user).patch(policy_url(policy), {
        "active": False, "requirements": [{"role": "cab_member", "count": 0}]}, format="json")
    assert response.status_code == 400
    policy.refresh_from_db()
    assert policy.active is True
    assert [(r.role.name, r.count) for r in policy.requirements.all()] == [("cab_member", 1)]


# Who may call the API at all


def _endpoints(change, policy) -> list[tuple[str, str, dict]]:
    return [
        ("get", CHANGES, {}), ("post", CHANGES, new_change()), ("get", change_url(change), {}),
        ("patch", change_url(change), {"title": "x"}),
        ("post", change_url(change, "transitions/"), {"target": "cancelled"}),
        ("get", change_url(change, "approvals/"), {}), ("post", change_url(change, "approvals/"),
                                                        {"decision": "approve"}),
        ("post", change_url(change, "retrospective/"), {"notes": "x"}),
        ("get", POLICIES, {}), ("get", policy_url(policy), {}), ("post", POLICIES, new_policy()),
        ("patch", policy_url(policy), {"active": False}), ("delete", policy_url(policy), {}),
    ]


def test_an_outsider_is_refused_everywhere(api, outsider, in_review):
    client = api.as_user(outsider)
    policy = ApprovalPolicy.objects.get(name=CAB_POLICY)
    for method, url, body in _endpoints(in_review, policy):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, (method, url, response.status_code)
        assert errors(response)
    in_review.refresh_from_db()
    assert (in_review.status, in_review.title) == (ChangeStatus.CAB_REVIEW, "Upgrade payments-api")
    assert ChangeRequest.objects.count() == 1
    assert ApprovalPolicy.objects.filter(active=True).count() == 4


def test_an_anonymous_caller_must_authenticate_everywhere(api, in_review):
    policy = ApprovalPolicy.objects.get(name=CAB_POLICY)
    for method, url, body in _endpoints(in_review, policy):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 401, (method, url, response.status_code)
        assert errors(response)
    assert ChangeRequest.objects.count() == 1


def test_a_template_is_named_by_its_name(api, requester, payments_api, staging):
    make_template("Certificate rotation", backout_plan="restore the old cert")
    response = api.as_user(requester).post(CHANGES, new_change(change_type="standard",
                                                               template="Certificate rotation"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["template"] == "Certificate rotation"


def test_a_retired_template_cannot_be_used(api, requester, payments_api, staging):
    make_template("Old rotation", active=False)
    response = api.as_user(requester).post(CHANGES, new_change(change_type="standard", template="Old rotation"),
                                           format="json")
    assert response.status_code == 400
    assert names_field(response, "template")
    assert not ChangeRequest.objects.exists()
