"""The change pages through Django's test client: the CAB queue, a change, its form, and CAB meetings."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.changes.selectors import change_conflicts
from governance.changes.services import approval_record, change_request_transition
from governance.models import (
    Approval,
    ApprovalRequirement,
    CabAgendaItem,
    CabMeeting,
    ChangeRequest,
    ChangeStatus,
    ChangeStatusChange,
)
from governance.roles import Role
from tests.factories import link, make_change, make_ci, make_team, make_user

pytestmark = pytest.mark.django_db

QUEUE = "/changes/"
NEW = "/changes/new/"
CI_SEARCH = "/changes/ci-search/"
MEETINGS = "/cab/meetings/"
HTMX = {"HTTP_HX_REQUEST": "true"}
# The queue's budget: session, user, permissions, the viewer's roles and team grants, the filter form's
# teams and environments, the count, the page, its conflicts. The same whatever the number of changes.
QUEUE_QUERY_BOUND = 14
# The change page's budget includes the calendar's verdict on its window (freezes, lockdowns) and its hold.
CHANGE_PAGE_QUERIES = 20


def page_url(change) -> str:
    return f"/changes/{change.number}/"


def numbers(response) -> list[str]:
    """The change numbers in the queue's table, in page order."""
    assert response.status_code == 200, response.content[:500]
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'data-number="(CHG\d+)"', body)


@pytest.fixture
def estate(team):
    """payments-api depends on payments-db; online-banking depends on payments-api."""
    platform = make_team("platform", name="Platform")
    db = make_ci("payments-db", team=team, ci_type="database", criticality=2)
    api = make_ci("payments-api", team=team, criticality=3)
    web = make_ci("online-banking", team=team, ci_type="application", criticality=3)
    dns = make_ci("dns", team=platform, ci_type="network", criticality=3)
    link(api, db)
    link(web, api)
    return {"db": db, "api": api, "web": web, "dns": dns, "platform": platform}


def in_review(requester, *, cis, environment, **fields) -> ChangeRequest:
    """A change submitted through the service, now awaiting CAB approval."""
    change = make_change(requester, cis=cis, environment=environment, **fields)
    change = change_request_transition(actor=requester, change=change, target=ChangeStatus.SUBMITTED)
    assert change.status == ChangeStatus.CAB_REVIEW, change.risk_factors
    return change


@pytest.fixture
def reviewed(requester, estate, staging):
    return in_review(requester, cis=[estate["api"]], environment=staging, title="Upgrade payments-api")


# --- who may open what ----------------------------------------------------------------------------------


@pytest.fixture
def every_page(reviewed, release_manager):
    meeting = CabMeeting.objects.create(title="Weekly CAB", starts_at=timezone.now(), organiser=release_manager)
    return [QUEUE, NEW, CI_SEARCH + "?ci_q=pay", page_url(reviewed), page_url(reviewed) + "edit/", MEETINGS,
            f"{MEETINGS}{meeting.pk}/"]


@pytest.fixture
def every_action(reviewed, release_manager):
    meeting = CabMeeting.objects.create(title="Weekly CAB", starts_at=timezone.now(), organiser=release_manager)
    base = page_url(reviewed)
    return [base + "decide/", base + "transition/", base + "retrospective/", f"{MEETINGS}{meeting.pk}/refresh/",
            MEETINGS, f"{MEETINGS}{meeting.pk}/", NEW, base + "edit/"]


def test_an_anonymous_visitor_is_sent_to_log_in_from_every_page(client, every_page):
    for url in every_page:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_an_anonymous_post_is_sent_to_log_in_and_changes_nothing(client, every_action, reviewed):
    for url in every_action:
        response = client.post(url, {"decision": "approve", "target": "cancelled", "title": "x"})
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    assert not Approval.objects.exists()
    assert ChangeRequest.objects.get(pk=reviewed.pk).status == ChangeStatus.CAB_REVIEW


def test_a_user_without_a_role_is_refused_every_page(client, outsider, every_page):
    client.force_login(outsider)
    for url in every_page:
        assert client.get(url).status_code == 403, url


def test_a_user_without_a_role_is_refused_every_action(client, outsider, every_action, reviewed):
    client.force_login(outsider)
    for url in every_action:
        assert client.post(url, {"decision": "approve", "target": "cancelled"}, **HTMX).status_code == 403, url
    assert not Approval.objects.exists()
    assert ChangeRequest.objects.get(pk=reviewed.pk).status == ChangeStatus.CAB_REVIEW


def test_a_cab_member_may_read_changes_but_not_raise_or_edit_them(client, cab_member, reviewed):
    client.force_login(cab_member)
    assert client.get(QUEUE).status_code == 200
    assert client.get(page_url(reviewed)).status_code == 200
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, {"title": "sneaky"}).status_code == 403
    assert client.get(page_url(reviewed) + "edit/").status_code == 403
    assert client.get(CI_SEARCH + "?ci_q=pay").status_code == 403
    assert ChangeRequest.objects.count() == 1


def test_another_requester_may_not_edit_someone_elses_change(client, reviewed):
    other = make_user("other-requester", Role.REQUESTER)
    client.force_login(other)
    assert client.get(page_url(reviewed) + "edit/").status_code == 403
    assert client.post(page_url(reviewed) + "edit/", {"title": "Mine now"}).status_code == 403
    assert ChangeRequest.objects.get(pk=reviewed.pk).title == "Upgrade payments-api"


def test_an_unknown_change_is_not_found(client, cab_member):
    client.force_login(cab_member)
    assert client.get("/changes/CHG9999999/").status_code == 404


def test_the_navigation_offers_changes_and_meetings_to_role_holders_only(client, cab_member, outsider):
    client.force_login(cab_member)
    body = client.get(QUEUE).content.decode()
    assert 'href="/changes/" aria-current="page">Changes</a>' in body
    assert 'href="/cab/meetings/"' in body
    client.force_login(outsider)
    body = client.get("/tokens/").content.decode()
    assert 'href="/changes/"' not in body


# --- the CAB queue --------------------------------------------------------------------------------------


def test_the_queue_lists_changes_awaiting_my_approval_first_and_marks_them(client, requester, cab_member, estate,
                                                                          staging):
    later_mine = in_review(requester, cis=[estate["api"]], environment=staging, start_in_hours=240,
                           title="Mine, late")
    soon = make_change(requester, cis=[estate["dns"]], environment=staging, start_in_hours=24, title="Soon")
    soon = change_request_transition(actor=requester, change=soon, target=ChangeStatus.SUBMITTED)
    approval_record(actor=make_user("other-cab", Role.CAB_MEMBER), change=soon, decision="approve")
    own = in_review(cab_member, cis=[estate["dns"]], environment=staging, start_in_hours=12, title="Own")
    make_change(requester, cis=[estate["dns"]], environment=staging, title="A draft stays out")

    client.force_login(cab_member)
    response = client.get(QUEUE)
    assert numbers(response) == [later_mine.number, own.number, soon.number]
    body = response.content.decode()
    row = body.split(f'data-number="{later_mine.number}"', 1)[1].split("</tr>", 1)[0]
    assert "your approval" in row
    assert body.count('class="awaits-me"') == 1
    # Someone who approves nothing sees the same changes by window.
    client.force_login(make_user("auditor", Role.AUDITOR))
    assert numbers(client.get(QUEUE)) == [own.number, soon.number, later_mine.number]


def test_the_queue_filters_by_risk_type_status_team_environment_ci_window_and_mine(
        client, requester, cab_member, estate, staging, prod):
    payments_change = in_review(requester, cis=[estate["api"]], environment=staging, start_in_hours=24)
    platform_change = in_review(requester, cis=[estate["dns"]], environment=prod, start_in_hours=24 * 10,
                                change_type="emergency")
    approval_record(actor=cab_member, change=platform_change, decision="approve")
    platform_change.refresh_from_db()
    assert platform_change.status == ChangeStatus.APPROVED
    ChangeRequest.objects.filter(pk=payments_change.pk).update(risk_level="high")
    ChangeRequest.objects.filter(pk=platform_change.pk).update(risk_level="low")
    client.force_login(cab_member)

    def shown(**query) -> list[str]:
        return numbers(client.get(QUEUE, query))

    assert shown(risk_level="high") == [payments_change.number]
    assert shown(risk_level="low") == [platform_change.number]
    assert shown(risk_level="critical") == []
    assert shown(change_type="emergency") == [platform_change.number]
    assert shown(status="cab_review") == [payments_change.number]
    assert shown(status="approved") == [platform_change.number]
    assert shown(team="payments") == [payments_change.number]
    assert shown(team="platform") == [platform_change.number]
    assert shown(environment="prod") == [platform_change.number]
    assert shown(ci="payments-api") == [payments_change.number]
    assert shown(risk_level="high", change_type="emergency") == []
    day = (timezone.now() + timedelta(days=10)).date().isoformat()
    assert shown(window_from=day) == [platform_change.number]
    assert shown(window_to=(timezone.now() + timedelta(days=2)).date().isoformat()) == [payments_change.number]
    assert shown(window_from=day, window_to=day) == [platform_change.number]
    assert shown(awaiting_me="on") == [payments_change.number]  # the other one the cab member has approved
    client.force_login(requester)  # approves nothing
    assert shown(awaiting_me="on") == []


def test_a_bad_filter_is_reported_and_left_out(client, cab_member, reviewed):
    client.force_login(cab_member)
    response = client.get(QUEUE, {"risk_level": "enormous", "window_from": "yesterday"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert numbers(response) == [reviewed.number]


def test_the_queue_flags_conflicts_as_the_change_page_does(client, requester, cab_member, estate, staging):
    on_api = in_review(requester, cis=[estate["api"]], environment=staging, start_in_hours=48)
    on_db = in_review(requester, cis=[estate["db"]], environment=staging, start_in_hours=49)  # api depends on db
    elsewhere = in_review(requester, cis=[estate["dns"]], environment=staging, start_in_hours=48)
    on_db_later = in_review(requester, cis=[estate["db"]], environment=staging, start_in_hours=24 * 20)
    client.force_login(cab_member)
    body = client.get(QUEUE).content.decode()
    flagged = {number for number in numbers(client.get(QUEUE))
               if "conflict" in body.split(f'data-number="{number}"', 1)[1].split("</tr>", 1)[0]}
    assert flagged == {on_api.number, on_db.number}
    for change in (on_api, on_db, elsewhere, on_db_later):
        assert (change.number in flagged) == change_conflicts(change).exists(), change.title


def test_the_queue_flags_an_emergency_change_whose_retrospective_is_overdue(client, requester, cab_member, estate,
                                                                           staging):
    emergency = in_review(requester, cis=[estate["dns"]], environment=staging, change_type="emergency")
    approval_record(actor=cab_member, change=emergency, decision="approve")
    ChangeRequest.objects.filter(pk=emergency.pk).update(retrospective_due=timezone.now() - timedelta(hours=1))
    client.force_login(cab_member)
    body = client.get(QUEUE).content.decode()
    assert "retro overdue" in body.split(f'data-number="{emergency.number}"', 1)[1].split("</tr>", 1)[0]


def open_changes(count: int, requester, cis, environment) -> list[ChangeRequest]:
    """`count` changes built in bulk: most awaiting a CAB member, some approved, some emergency and overdue,
    with overlapping windows on shared CIs so that conflicts show."""
    role = Group.objects.get(name=Role.CAB_MEMBER)
    now = timezone.now()
    changes = ChangeRequest.objects.bulk_create([
        ChangeRequest(
            title=f"Bulk change {n}", requester=requester, environment=environment,
            change_type="emergency" if n % 10 == 0 else "normal",
            status=ChangeStatus.APPROVED if n % 4 == 0 else ChangeStatus.CAB_REVIEW,
            approved_at=now if n % 4 == 0 else None,
            retrospective_due=now - timedelta(days=1) if n % 20 == 0 else None,
            planned_start=now + timedelta(hours=n % 97), planned_end=now + timedelta(hours=n % 97 + 2),
            risk_score=n % 100, risk_level=["low", "medium", "high", "critical"][n % 4],
            impacted_ci_ids=[cis[n % len(cis)].pk, cis[(n + 1) % len(cis)].pk], review_requested_at=now,
        ) for n in range(count)
    ], batch_size=1000)
    through = ChangeRequest.affected_cis.through
    through.objects.bulk_create([through(changerequest_id=c.pk, configurationitem_id=cis[n % len(cis)].pk)
                                 for n, c in enumerate(changes)], batch_size=2000)
    ApprovalRequirement.objects.bulk_create([
        ApprovalRequirement(change=c, role=role, count=1, policies=["Normal changes: CAB review"], revision=1)
        for c in changes], batch_size=2000)
    return changes


def queue_queries(client, url: str = QUEUE) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_queue_takes_the_same_number_of_queries_for_5_or_60_changes(client, requester, cab_member, estate,
                                                                       staging, django_assert_max_num_queries):
    cis = [estate["api"], estate["db"], estate["dns"]]
    client.force_login(cab_member)
    open_changes(5, requester, cis, staging)
    with django_assert_max_num_queries(QUEUE_QUERY_BOUND):
        assert len(numbers(client.get(QUEUE))) == 5
    few = queue_queries(client)
    open_changes(55, requester, cis, staging)
    with django_assert_max_num_queries(QUEUE_QUERY_BOUND):
        response = client.get(QUEUE)
    assert len(numbers(response)) == 50
    body = response.content.decode()
    assert "conflict" in body and "retro overdue" in body and "your approval" in body
    assert queue_queries(client) == few
    with django_assert_max_num_queries(QUEUE_QUERY_BOUND):  # a team filter adds one query, looking the team up
        assert len(numbers(client.get(QUEUE + "?page=2&team=payments&risk_level=low&awaiting_me=on"))) == 0
    with django_assert_max_num_queries(QUEUE_QUERY_BOUND):
        assert len(numbers(client.get(QUEUE + "?page=2"))) == 10


def test_the_first_page_of_5000_open_changes_stays_within_the_same_budget(client, requester, cab_member, estate,
                                                                          staging, django_assert_max_num_queries):
    open_changes(5000, requester, [estate["api"], estate["db"], estate["dns"]], staging)
    client.force_login(cab_member)
    with django_assert_max_num_queries(QUEUE_QUERY_BOUND):
        response = client.get(QUEUE)
    assert len(numbers(response)) == 50
    assert "5000 open changes" in response.content.decode()


# --- one change -----------------------------------------------------------------------------------------


def test_the_change_page_shows_summary_risk_blast_radius_conflicts_checklist_and_history(
        client, requester, cab_member, estate, staging):
    change = in_review(requester, cis=[estate["db"]], environment=staging, release_strategy="rolling",
                       strategy_reason="small service")
    other = in_review(requester, cis=[estate["api"]], environment=staging)
    client.force_login(cab_member)
    response = client.get(page_url(change))
    assert response.status_code == 200
    body = response.content.decode()
    assert change.title in body and "staging" in body and "requester" in body
    assert "recommended: Blue-green" in body and "business critical" in body  # tier 2: blue-green
    assert "differs from the recommendation" in body
    for factor in change.risk_factors:
        assert factor["detail"] in body
    assert "<strong>2</strong> other CIs depend" in body  # payments-api and online-banking
    assert 'aria-label="Impact graph of payments-db"' in body
    assert other.number in body.split('id="conflicts"', 1)[1]
    assert "Still needed: 1 approval from CAB member" in body
    assert f'hx-get="/audit/history/governance.changerequest/{change.pk}/"' in body
    assert "awaiting approvals" in body  # status history


def test_a_requester_does_not_see_the_approve_button_on_their_own_change(client, requester, cab_member, reviewed):
    client.force_login(requester)
    body = client.get(page_url(reviewed)).content.decode()
    assert 'value="approve"' not in body and "/decide/" not in body
    client.force_login(cab_member)
    body = client.get(page_url(reviewed)).content.decode()
    assert 'value="approve"' in body and f'hx-post="/changes/{reviewed.number}/decide/"' in body


def test_a_requester_posting_approve_on_their_own_change_is_refused_and_nothing_is_recorded(client, requester,
                                                                                           reviewed):
    client.force_login(requester)
    response = client.post(page_url(reviewed) + "decide/", {"decision": "approve", "comment": "lgtm"}, **HTMX)
    assert response.status_code == 403
    assert "You requested this change: someone else must approve it." in response.content.decode()
    assert 'id="change-state"' in response.content.decode()
    assert not Approval.objects.exists()
    assert ChangeRequest.objects.get(pk=reviewed.pk).status == ChangeStatus.CAB_REVIEW
    # Without htmx, the same refusal comes back as a message on the change page.
    response = client.post(page_url(reviewed) + "decide/", {"decision": "approve"}, follow=True)
    assert "someone else must approve it" in response.content.decode()
    assert not Approval.objects.exists()


def test_an_implementer_may_not_approve_the_change_they_will_carry_out(client, requester, estate, staging):
    implementer = make_user("impl", Role.CAB_MEMBER)
    change = in_review(requester, cis=[estate["api"]], environment=staging, implementer=implementer)
    client.force_login(implementer)
    assert 'value="approve"' not in client.get(page_url(change)).content.decode()
    response = client.post(page_url(change) + "decide/", {"decision": "approve"}, **HTMX)
    assert response.status_code == 403
    assert not Approval.objects.exists()


def test_approving_with_htmx_returns_the_panel_with_the_new_status(client, cab_member, reviewed):
    client.force_login(cab_member)
    response = client.post(page_url(reviewed) + "decide/", {"decision": "approve", "comment": "Looks safe"}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card approvals" id="change-state"')
    assert 'data-status="approved"' in body and "Your approval is recorded." in body
    assert "Looks safe" in body and 'value="approve"' not in body
    assert '<span id="change-status" hx-swap-oob="true">' in body  # the heading's badge follows
    assert 'id="status-history" hx-swap-oob="true"' in body
    assert "every required approval given" in body
    approval = Approval.objects.get()
    assert (approval.approver, approval.decision, approval.comment) == (cab_member, "approve", "Looks safe")
    assert ChangeRequest.objects.get(pk=reviewed.pk).status == ChangeStatus.APPROVED
    assert response["Vary"].count("HX-Request") == 1


def test_rejecting_with_htmx_rejects_the_change(client, cab_member, reviewed):
    client.force_login(cab_member)
    response = client.post(page_url(reviewed) + "decide/", {"decision": "reject", "comment": "No backout test"},
                           **HTMX)
    assert response.status_code == 200
    assert 'data-status="rejected"' in response.content.decode()
    assert ChangeRequest.objects.get(pk=reviewed.pk).status == ChangeStatus.REJECTED


def test_deciding_twice_is_refused_in_the_panel_with_a_conflict(client, cab_member, reviewed):
    client.force_login(cab_member)
    client.post(page_url(reviewed) + "decide/", {"decision": "approve"}, **HTMX)
    response = client.post(page_url(reviewed) + "decide/", {"decision": "reject"}, **HTMX)
    assert response.status_code == 409
    assert "not awaiting approval" in response.content.decode()
    assert Approval.objects.count() == 1


def test_an_unknown_decision_is_a_bad_request(client, cab_member, reviewed):
    client.force_login(cab_member)
    response = client.post(page_url(reviewed) + "decide/", {"decision": "maybe"}, **HTMX)
    assert response.status_code == 400
    assert "Choose approve or reject." in response.content.decode()
    assert not Approval.objects.exists()


def test_the_approve_panel_allows_htmx_to_swap_in_refusals(client, cab_member, reviewed):
    client.force_login(cab_member)
    body = client.get(page_url(reviewed)).content.decode()
    assert "[400, 403, 409].includes(event.detail.xhr.status)" in body


def test_a_requester_submits_a_draft_from_its_page(client, requester, estate, staging):
    draft = make_change(requester, cis=[estate["api"]], environment=staging)
    client.force_login(requester)
    body = client.get(page_url(draft)).content.decode()
    assert 'value="submitted"' in body and 'value="cancelled"' in body and 'value="scheduled"' not in body
    response = client.post(page_url(draft) + "transition/", {"target": "submitted", "reason": "ready"}, follow=True)
    assert "is now CAB review" in response.content.decode()
    assert ChangeRequest.objects.get(pk=draft.pk).status == ChangeStatus.CAB_REVIEW
    assert ChangeStatusChange.objects.filter(change=draft, to_status="submitted", reason="ready").exists()


def test_a_refused_move_is_explained_and_changes_nothing(client, requester, cab_member, estate, staging):
    draft = make_change(requester, cis=[estate["api"]], environment=staging, backout_plan="")
    client.force_login(cab_member)
    assert "/transition/" not in client.get(page_url(draft)).content.decode()  # nothing for a CAB member to move
    response = client.post(page_url(draft) + "transition/", {"target": "submitted"}, follow=True)
    assert "Only the requester may move this change to Submitted." in response.content.decode()
    client.force_login(requester)
    response = client.post(page_url(draft) + "transition/", {"target": "submitted"}, follow=True)
    assert "Before submitting, add a backout plan." in response.content.decode()
    assert ChangeRequest.objects.get(pk=draft.pk).status == ChangeStatus.DRAFT


def test_a_release_manager_schedules_an_approved_change(client, release_manager, cab_member, reviewed):
    approval_record(actor=cab_member, change=reviewed, decision="approve")
    client.force_login(release_manager)
    assert 'value="scheduled"' in client.get(page_url(reviewed)).content.decode()
    client.post(page_url(reviewed) + "transition/", {"target": "scheduled"})
    assert ChangeRequest.objects.get(pk=reviewed.pk).status == ChangeStatus.SCHEDULED


def test_an_emergency_change_retrospective_is_recorded_by_a_cab_member_not_the_requester(
        client, requester, cab_member, estate, staging):
    emergency = in_review(requester, cis=[estate["dns"]], environment=staging, change_type="emergency")
    approval_record(actor=cab_member, change=emergency, decision="approve")
    client.force_login(requester)
    body = client.get(page_url(emergency)).content.decode()
    assert "Retrospective review" in body and "Record the review" not in body
    client.post(page_url(emergency) + "retrospective/", {"notes": "I reviewed myself"})
    assert ChangeRequest.objects.get(pk=emergency.pk).retrospective_done_at is None

    client.force_login(cab_member)
    assert "Record the review" in client.get(page_url(emergency)).content.decode()
    response = client.post(page_url(emergency) + "retrospective/", {"notes": "Root cause understood"}, follow=True)
    assert "The retrospective review is recorded." in response.content.decode()
    emergency.refresh_from_db()
    assert emergency.retrospective_done_at is not None and emergency.retrospective_notes == "Root cause understood"


# --- the change form ------------------------------------------------------------------------------------


def form_data(**overrides) -> dict:
    start = timezone.now() + timedelta(days=3)
    data = {
        "title": "Rotate payments-db credentials", "description": "Quarterly rotation", "change_type": "normal",
        "environment": "staging", "planned_start": start.strftime("%Y-%m-%dT%H:%M"),
        "planned_end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "implementation_plan": "1. rotate\r\n2. restart", "test_evidence": "https://ci.example/run/1",
        "backout_plan": "restore the previous secret", "rollback_error_rate_pct": "2.5",
        "rollback_latency_p99_ms": "800", "rollback_failed_health_checks": "3", "release_strategy": "canary",
        "strategy_reason": "tier 2 service", "feature_flags": "new-pool, rotate-v2\nkill-switch",
    }
    return {**data, **overrides}


def test_a_requester_raises_a_change_with_the_form(client, requester, estate, staging):
    client.force_login(requester)
    page = client.get(NEW)
    assert page.status_code == 200 and 'id="ci-search"' in page.content.decode()
    response = client.post(NEW, {**form_data(), "cis": [estate["db"].pk, estate["api"].pk]})
    change = ChangeRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == page_url(change)
    assert change.requester == requester and change.status == ChangeStatus.DRAFT
    assert set(change.affected_cis.all()) == {estate["db"], estate["api"]}
    assert change.environment == staging and change.planned_end - change.planned_start == timedelta(hours=1)
    assert change.planned_start.utcoffset() == timedelta(0)
    assert change.feature_flags == ["new-pool", "rotate-v2", "kill-switch"]
    assert change.implementation_plan == "1. rotate\n2. restart"
    assert str(change.rollback_error_rate_pct) == "2.50" and change.release_strategy == "canary"


def test_a_service_error_on_create_names_its_field(client, requester, estate, staging):
    client.force_login(requester)
    response = client.post(NEW, {**form_data(feature_flags="x" * 150), "cis": [estate["db"].pk]})
    assert response.status_code == 400
    body = response.content.decode()
    errors = re.search(r'data-field="feature_flags">(.*?)</div>', body, re.S)
    assert errors and "at most 100 characters" in errors.group(1)
    assert not ChangeRequest.objects.exists()
    assert f'name="cis" value="{estate["db"].pk}" checked' in body  # the chosen CI is kept


def test_form_errors_name_their_fields(client, requester):
    client.force_login(requester)
    response = client.post(NEW, form_data(title="", planned_start="next tuesday", rollback_latency_p99_ms="-1"))
    assert response.status_code == 400
    body = response.content.decode()
    for field in ("title", "planned_start", "rollback_latency_p99_ms"):
        assert f'data-field="{field}"' in body, field
    assert not ChangeRequest.objects.exists()


def test_a_window_that_ends_before_it_starts_is_refused(client, requester, staging):
    client.force_login(requester)
    data = form_data()
    response = client.post(NEW, {**data, "planned_end": data["planned_start"], "planned_start": data["planned_end"]})
    assert response.status_code == 400
    errors = re.search(r'data-field="planned_end">(.*?)</div>', response.content.decode(), re.S)
    assert errors and "The window must end after it starts." in errors.group(1)
    assert not ChangeRequest.objects.exists()


def test_editing_a_draft_saves_every_field(client, requester, estate, staging):
    draft = make_change(requester, cis=[estate["api"]], environment=staging)
    client.force_login(requester)
    page = client.get(page_url(draft) + "edit/").content.decode()
    assert f'name="cis" value="{estate["api"].pk}" checked' in page and "Upgrade payments-api" in page
    response = client.post(page_url(draft) + "edit/", {**form_data(title="Renamed"), "cis": [estate["dns"].pk]})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.title == "Renamed" and list(draft.affected_cis.all()) == [estate["dns"]]


def edit_data_of(client, change) -> dict:
    """What the edit form would post back unchanged, read from the form itself."""
    from governance.changes.forms import ChangeRequestForm

    form = ChangeRequestForm(initial=ChangeRequestForm.initial_for(change))
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if name == "cis":
            data[name] = value
        elif value is None:
            data[name] = ""
        elif hasattr(value, "strftime"):
            data[name] = value.strftime("%Y-%m-%dT%H:%M")
        else:
            data[name] = field.prepare_value(value) if name == "feature_flags" else value
    data["environment"] = change.environment.name if change.environment else ""
    data["implementation_plan"] = change.implementation_plan.replace("\n", "\r\n")  # as a browser sends it
    return data


def test_editing_a_submitted_change_saves_what_may_still_change(client, requester, reviewed):
    client.force_login(requester)
    reviewed.implementation_plan = "line one\nline two"
    reviewed.save()
    data = edit_data_of(client, reviewed)
    response = client.post(page_url(reviewed) + "edit/", {**data, "title": "Upgrade payments-api to 4.2"})
    assert response.status_code == 302, response.content.decode()[:2000]
    reviewed.refresh_from_db()
    assert reviewed.title == "Upgrade payments-api to 4.2"
    assert reviewed.revision == 1 and reviewed.status == ChangeStatus.CAB_REVIEW  # nothing material changed


def test_a_service_error_on_edit_names_its_field_and_saves_nothing(client, requester, reviewed):
    client.force_login(requester)
    data = edit_data_of(client, reviewed)
    response = client.post(page_url(reviewed) + "edit/", {**data, "title": "New title",
                                                          "backout_plan": "pray"})
    assert response.status_code == 400
    body = response.content.decode()
    errors = re.search(r'data-field="backout_plan">(.*?)</div>', body, re.S)
    assert errors and "The backout plan is fixed once the change is submitted." in errors.group(1)
    reviewed.refresh_from_db()
    assert reviewed.title == "Upgrade payments-api" and reviewed.backout_plan == "helm rollback"


def test_moving_the_window_of_an_approved_change_sends_it_back_to_review(client, requester, cab_member, reviewed):
    approval_record(actor=cab_member, change=reviewed, decision="approve")
    reviewed.refresh_from_db()
    client.force_login(requester)
    data = edit_data_of(client, reviewed)
    later = reviewed.planned_start + timedelta(days=1)
    response = client.post(page_url(reviewed) + "edit/", {**data, "planned_start": later.strftime("%Y-%m-%dT%H:%M"),
                                                          "planned_end": (later + timedelta(hours=2)).strftime(
                                                              "%Y-%m-%dT%H:%M")})
    assert response.status_code == 302
    reviewed.refresh_from_db()
    assert reviewed.status == ChangeStatus.CAB_REVIEW and reviewed.revision == 2


def test_the_ci_picker_finds_cis_and_keeps_the_chosen_ones(client, requester, estate):
    client.force_login(requester)
    response = client.get(CI_SEARCH, {"ci_q": "payments", "cis": [estate["db"].pk]})
    assert response.status_code == 200
    body = response.content.decode()
    picked, matches = body.split('aria-label="Matching CIs"', 1)
    assert f'name="cis" value="{estate["db"].pk}" checked' in picked
    assert f'name="cis" value="{estate["api"].pk}">' in matches
    assert f'value="{estate["db"].pk}"' not in matches and "online-banking" not in body
    assert "No other CI matches" in client.get(CI_SEARCH, {"ci_q": "nothing-like-it"}).content.decode()


# --- CAB meetings ---------------------------------------------------------------------------------------


def test_a_release_manager_creates_a_meeting_whose_agenda_holds_the_changes_awaiting_cab(
        client, release_manager, cab_member, reviewed, requester, estate, staging):
    make_change(requester, cis=[estate["dns"]], environment=staging, title="Draft, not on the agenda")
    client.force_login(release_manager)
    assert "Create meeting" in client.get(MEETINGS).content.decode()
    starts = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(MEETINGS, {"title": "Weekly CAB", "starts_at": starts, "attendees": [cab_member.pk]})
    meeting = CabMeeting.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{MEETINGS}{meeting.pk}/"
    assert list(meeting.agenda.values_list("change", flat=True)) == [reviewed.pk]
    assert list(meeting.attendees.all()) == [cab_member]
    body = client.get(response["Location"]).content.decode()
    assert reviewed.number in body and "0 of 1" in body and "Refresh agenda" in body
    assert "Weekly CAB" in client.get(MEETINGS).content.decode()


def test_a_meeting_needs_a_title_and_a_start(client, release_manager):
    client.force_login(release_manager)
    response = client.post(MEETINGS, {"title": " ", "starts_at": ""})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-field="title"' in body and 'data-field="starts_at"' in body
    assert not CabMeeting.objects.exists()


def test_a_cab_member_reads_meetings_but_may_not_create_or_record_them(client, cab_member, release_manager,
                                                                       reviewed):
    meeting = CabMeeting.objects.create(title="Weekly CAB", starts_at=timezone.now(), organiser=release_manager,
                                        minutes="Old minutes")
    client.force_login(cab_member)
    listing = client.get(MEETINGS).content.decode()
    assert "Weekly CAB" in listing and "Create meeting" not in listing
    assert client.post(MEETINGS, {"title": "Mine", "starts_at": "2030-01-01T10:00"}).status_code == 403
    page = client.get(f"{MEETINGS}{meeting.pk}/").content.decode()
    assert "Old minutes" in page and "Save minutes" not in page and "Refresh agenda" not in page
    assert client.post(f"{MEETINGS}{meeting.pk}/", {"minutes": "Rewritten"}).status_code == 403
    assert client.post(f"{MEETINGS}{meeting.pk}/refresh/").status_code == 403
    meeting.refresh_from_db()
    assert CabMeeting.objects.count() == 1 and meeting.minutes == "Old minutes" and not meeting.agenda.exists()


def test_a_release_manager_records_outcomes_notes_minutes_and_refreshes_the_agenda(
        client, release_manager, cab_member, reviewed, requester, estate, staging):
    client.force_login(release_manager)
    starts = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    client.post(MEETINGS, {"title": "Weekly CAB", "starts_at": starts})
    meeting = CabMeeting.objects.get()
    item = meeting.agenda.get()
    response = client.post(f"{MEETINGS}{meeting.pk}/", {
        "minutes": "Quorum reached.\r\nOne change discussed.", "attendees": [cab_member.pk],
        f"outcome_{item.pk}": "deferred", f"notes_{item.pk}": "Needs a load test first",
    })
    assert response.status_code == 302
    meeting.refresh_from_db()
    item.refresh_from_db()
    assert meeting.minutes == "Quorum reached.\nOne change discussed."
    assert list(meeting.attendees.all()) == [cab_member]
    assert (item.outcome, item.notes) == ("deferred", "Needs a load test first")

    assert client.post(f"{MEETINGS}{meeting.pk}/", {f"outcome_{item.pk}": "exploded"}).status_code == 400
    item.refresh_from_db()
    assert item.outcome == "deferred"

    later = in_review(requester, cis=[estate["dns"]], environment=staging, title="Raised after the meeting was set")
    response = client.post(f"{MEETINGS}{meeting.pk}/refresh/", follow=True)
    assert "1 change added" in response.content.decode()
    assert list(meeting.agenda.values_list("change", flat=True)) == [reviewed.pk, later.pk]


def test_the_meeting_page_takes_the_same_number_of_queries_for_a_short_or_long_agenda(
        client, release_manager, requester, estate, staging):
    meeting = CabMeeting.objects.create(title="Weekly CAB", starts_at=timezone.now(), organiser=release_manager)
    changes = open_changes(3, requester, [estate["api"], estate["dns"]], staging)
    CabAgendaItem.objects.bulk_create([CabAgendaItem(meeting=meeting, change=c, position=n)
                                       for n, c in enumerate(changes)])
    client.force_login(release_manager)
    short = queue_queries(client, f"{MEETINGS}{meeting.pk}/")
    changes = open_changes(30, requester, [estate["api"], estate["dns"]], staging)
    CabAgendaItem.objects.bulk_create([CabAgendaItem(meeting=meeting, change=c, position=10 + n)
                                       for n, c in enumerate(changes)])
    assert queue_queries(client, f"{MEETINGS}{meeting.pk}/") == short


def test_the_change_page_reads_a_fixed_number_of_queries_whatever_it_shows(client, requester, cab_member, estate,
                                                                          staging):
    small = in_review(requester, cis=[estate["dns"]], environment=staging)
    large = in_review(requester, cis=[estate["db"], estate["api"], estate["web"], estate["dns"]],
                      environment=staging)  # two owning teams, a blast radius and a conflict
    in_review(requester, cis=[estate["api"]], environment=staging)
    client.force_login(cab_member)
    client.get(page_url(small))  # the content types are cached from the first request on
    counts = []
    for change in (small, large):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(page_url(change)).status_code == 200
        counts.append(len(queries))
    # The one CI without dependents skips loading the impact picture's CIs; nothing else varies.
    assert counts[0] + 1 == counts[1] <= CHANGE_PAGE_QUERIES, counts


def test_the_meetings_list_pages_through_many_meetings(client, release_manager):
    now = timezone.now()
    CabMeeting.objects.bulk_create([CabMeeting(title=f"CAB {n}", starts_at=now - timedelta(days=n),
                                               organiser=release_manager) for n in range(51)])
    client.force_login(release_manager)
    first = client.get(MEETINGS).content.decode()
    assert "Page 1 of 2" in first and 'href="?page=2"' in first and "CAB 49" in first and "CAB 50" not in first
    assert "CAB 50" in client.get(MEETINGS, {"page": 2}).content.decode()


def test_a_change_under_way_offers_no_edit_and_its_edit_page_says_why(client, requester, estate, staging):
    change = make_change(requester, cis=[estate["api"]], environment=staging, status=ChangeStatus.IMPLEMENTING)
    draft = make_change(requester, cis=[estate["api"]], environment=staging)
    client.force_login(requester)
    assert 'href="' + page_url(draft) + 'edit/"' in client.get(page_url(draft)).content.decode()
    assert 'href="' + page_url(change) + 'edit/"' not in client.get(page_url(change)).content.decode()
    response = client.get(page_url(change) + "edit/", follow=True)
    assert "A change in Implementing can no longer be edited." in response.content.decode()
    posted = client.post(page_url(change) + "edit/", {"title": "Rewritten"})
    change.refresh_from_db()
    assert change.title != "Rewritten"
    assert posted.status_code == 302 and posted.url == page_url(change)  # refused before the form is read
