"""The change lists: the CAB queue's filters taking an empty choice as "any", and the list of every change in
any state (mine with my drafts first, a period, a number or a title), each within a query budget."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.changes.services import approval_record, change_request_transition
from governance.models import ChangeRequest, ChangeStatus
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db

QUEUE = "/changes/"
LIST = "/changes/all/"
# What the queue's own page sends when a person changes one filter: every other one, empty.
EMPTY_QUEUE_FILTERS = {"risk_level": "", "change_type": "", "status": "", "team": "", "environment": "", "ci": "",
                       "window_from": "", "window_to": ""}
EMPTY_LIST_FILTERS = {"q": "", "mine": "", "status": "", "change_type": "", "risk_level": "", "team": "",
                      "environment": "", "ci": "", "dates": "window", "since": "", "until": ""}
# Session, user, permissions, the viewer's roles and team grants, the filter form's teams and environments, the
# count, the page, its conflicts: the queue's budget in tests/governance/changes/test_change_views.py.
QUEUE_QUERY_BOUND = 14
# Session, user, the user's and their groups' permissions, the form's teams and environments, the count and the
# page, whatever the number of changes.
LIST_QUERY_BOUND = 8


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'data-number="(CHG\d+)"', body)


def alerts(response) -> str:
    found = re.search(r'<div class="errors" role="alert">(.*?)</div>', response.content.decode(), re.S)
    return found[1] if found else ""


@pytest.fixture
def stage(db):
    return make_environment("staging", 2)


@pytest.fixture
def estate(team, stage):
    return {"api": make_ci("payments-api", team=team, criticality=3),
            "dns": make_ci("dns", team=make_team("platform", name="Platform"), ci_type="network", criticality=3),
            "staging": stage}


def in_review(requester, estate, **fields) -> ChangeRequest:
    change = make_change(requester, cis=[estate["api"]], environment=estate["staging"], **fields)
    return change_request_transition(actor=requester, change=change, target=ChangeStatus.SUBMITTED)


# --- the CAB queue's filters ------------------------------------------------------------------------------


def test_empty_choices_in_the_queue_mean_any_and_raise_no_error(client, requester, cab_member, estate):
    first = in_review(requester, estate, start_in_hours=24)
    second = in_review(requester, estate, start_in_hours=48, change_type="emergency")
    approval_record(actor=cab_member, change=second, decision="approve")
    client.force_login(cab_member)
    response = client.get(QUEUE, EMPTY_QUEUE_FILTERS)
    assert alerts(response) == ""
    assert numbers(response) == [first.number, second.number]
    # "Awaiting my approval" ticked, as the page sends it: the other filters come along empty.
    response = client.get(QUEUE, {**EMPTY_QUEUE_FILTERS, "awaiting_me": "on"})
    assert alerts(response) == ""
    assert numbers(response) == [first.number]
    assert "1 open change awaiting your approval" in response.content.decode()
    # One choice among empty ones filters on that choice alone.
    response = client.get(QUEUE + "?status=&status=approved&change_type=&risk_level=")
    assert alerts(response) == "" and numbers(response) == [second.number]


def test_a_cab_member_with_nothing_to_approve_is_told_so_and_offered_the_whole_queue(client, requester, cab_member,
                                                                                    estate):
    in_review(requester, estate)
    client.force_login(make_user("colin", Role.CAB_MEMBER))
    client.get(QUEUE)
    approval_record(actor=cab_member, change=ChangeRequest.objects.get(), decision="approve")
    body = client.get(QUEUE, {**EMPTY_QUEUE_FILTERS, "awaiting_me": "on"}).content.decode()
    assert "Nothing awaits your approval here." in body and f'href="{QUEUE}"' in body


def test_a_bad_choice_in_the_queue_is_named_by_its_label_and_left_out(client, requester, cab_member, estate):
    change = in_review(requester, estate)
    client.force_login(cab_member)
    response = client.get(QUEUE, {**EMPTY_QUEUE_FILTERS, "risk_level": "enormous"})
    assert "Risk: Select a valid choice. enormous is not one of the available choices." in alerts(response)
    assert "status" not in alerts(response).lower()
    assert numbers(response) == [change.number]


def test_the_queue_with_every_filter_sent_empty_keeps_its_query_budget(client, requester, cab_member, estate,
                                                                       django_assert_max_num_queries):
    client.force_login(cab_member)
    for _ in range(3):
        in_review(requester, estate)
    url = QUEUE + "?" + "&".join(f"{name}=" for name in EMPTY_QUEUE_FILTERS) + "&awaiting_me=on"
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert len(numbers(client.get(url))) == 3
    for _ in range(12):
        in_review(requester, estate)
    with django_assert_max_num_queries(QUEUE_QUERY_BOUND):
        assert len(numbers(client.get(url))) == 15
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


# --- every change ----------------------------------------------------------------------------------------


@pytest.fixture
def history(requester, estate):
    """One change in every state a change rests in, by the requester, and a draft of someone else's."""
    changes = {status: make_change(requester, cis=[estate["api"]], environment=estate["staging"], status=status,
                                   title=f"A {status} change")
               for status in ChangeStatus.values}
    changes["other draft"] = make_change(make_user("other", Role.REQUESTER), cis=[estate["dns"]],
                                         environment=estate["staging"], title="Someone else's draft")
    return changes


def test_every_change_in_every_state_is_listed_and_a_state_is_found_by_its_filter(client, auditor, history):
    client.force_login(auditor)
    response = client.get(LIST)
    assert sorted(numbers(response)) == sorted(change.number for change in history.values())
    for status in ("draft", "completed", "rejected", "closed", "cancelled"):
        response = client.get(LIST, {**EMPTY_LIST_FILTERS, "status": status})
        assert alerts(response) == "", status
        expected = {history[status].number} | ({history["other draft"].number} if status == "draft" else set())
        assert set(numbers(response)) == expected, status
    response = client.get(LIST + "?status=closed&status=cancelled&status=")
    assert set(numbers(response)) == {history["closed"].number, history["cancelled"].number}


def test_the_list_is_newest_update_first(client, auditor, history):
    ChangeRequest.objects.filter(pk=history["closed"].pk).update(updated_at=timezone.now() + timedelta(minutes=5))
    client.force_login(auditor)
    assert numbers(client.get(LIST))[0] == history["closed"].number


def test_my_changes_are_mine_only_with_my_drafts_first(client, requester, history, estate):
    ChangeRequest.objects.filter(pk=history["draft"].pk).update(updated_at=timezone.now() - timedelta(days=30))
    carried = make_change(make_user("someone", Role.REQUESTER), cis=[estate["dns"]], environment=estate["staging"],
                          implementer=requester, status=ChangeStatus.SCHEDULED, title="Carried out by me")
    client.force_login(requester)
    mine = numbers(client.get(LIST, {"mine": "either"}))
    assert mine[0] == history["draft"].number  # the oldest, yet first: a draft
    assert set(mine) == {c.number for k, c in history.items() if k != "other draft"} | {carried.number}
    assert carried.number not in numbers(client.get(LIST, {"mine": "requested"}))
    assert numbers(client.get(LIST, {"mine": "implementing"})) == [carried.number]
    body = client.get(LIST, {"mine": "either"}).content.decode()
    assert "<h1>My changes</h1>" in body and "drafts first" in body


def test_a_requester_with_no_change_is_offered_to_raise_one(client, requester):
    body = client.get(LIST, {"mine": "either"}, follow=True).content.decode()  # anonymous: to the login page
    assert "/login/" in body or "log in" in body.lower()
    client.force_login(requester)
    body = client.get(LIST, {"mine": "either"}).content.decode()
    assert "You have no change yet." in body and 'href="/changes/new/">Raise one</a>' in body


def test_changes_are_found_by_their_window_last_update_or_day_raised_in_a_period(client, auditor, requester, estate):
    now = timezone.now()
    last_month = make_change(requester, cis=[estate["api"]], environment=estate["staging"], status="closed",
                             start_in_hours=-24 * 30, title="Last month's")
    this_week = make_change(requester, cis=[estate["api"]], environment=estate["staging"], status="completed",
                            start_in_hours=-24, title="This week's")
    unplanned = make_change(requester, cis=[estate["api"]], environment=estate["staging"], planned_start=None,
                            planned_end=None, title="No window")
    ChangeRequest.objects.filter(pk=last_month.pk).update(updated_at=now - timedelta(days=28),
                                                          created_at=now - timedelta(days=40))
    client.force_login(auditor)

    def found(**query) -> set[str]:
        response = client.get(LIST, {**EMPTY_LIST_FILTERS, **query})
        assert alerts(response) == "", alerts(response)
        return set(numbers(response))

    month_ago = (now - timedelta(days=31)).date().isoformat()
    three_weeks_ago = (now - timedelta(days=21)).date().isoformat()
    today = now.date().isoformat()
    assert found(since=month_ago, until=three_weeks_ago) == {last_month.number}
    assert found(since=three_weeks_ago) == {this_week.number}
    assert found(until=today) == {last_month.number, this_week.number}  # a window is needed to meet a period
    assert found(dates="updated", since=three_weeks_ago) == {this_week.number, unplanned.number}
    assert found(dates="updated", until=three_weeks_ago) == {last_month.number}
    assert found(dates="raised", until=month_ago) == {last_month.number}
    assert found(dates="raised", since="9999-12-31", until="9999-12-31") == set()


def test_a_change_is_found_by_its_number_or_words_of_its_title(client, auditor, history):
    client.force_login(auditor)
    assert numbers(client.get(LIST, {"q": history["closed"].number.lower()})) == [history["closed"].number]
    assert numbers(client.get(LIST, {"q": "someone else"})) == [history["other draft"].number]


def test_a_bad_filter_of_the_list_is_named_and_left_out(client, auditor, history):
    client.force_login(auditor)
    response = client.get(LIST, {**EMPTY_LIST_FILTERS, "status": "lost", "since": "yesterday"})
    assert "Status: Select a valid choice. lost" in alerts(response)
    assert "From: Enter a valid date." in alerts(response)
    assert len(numbers(response)) == len(history)


def test_the_list_is_for_role_holders_only(client, outsider):
    assert client.get(LIST)["Location"].startswith("/login/?next=/changes/all/")
    client.force_login(outsider)
    assert client.get(LIST).status_code == 403


def test_the_navigation_and_tabs_lead_a_requester_to_their_changes(client, requester, cab_member):
    client.force_login(requester)
    body = client.get(LIST, {"mine": "either"}).content.decode()
    current = 'href="/changes/all/?mine=either" aria-current="page">My changes</a>'
    main, tabs = body.split('aria-label="Change lists"', 1)
    assert current in main and current in tabs
    client.force_login(cab_member)  # raises no change: the queue and every change
    body = client.get(QUEUE).content.decode()
    assert "My changes" not in body
    assert 'href="/changes/all/">All changes</a>' in body


def bulk_changes(count: int, requester, estate) -> None:
    now = timezone.now()
    ChangeRequest.objects.bulk_create([
        ChangeRequest(title=f"Bulk change {n}", requester=requester, environment=estate["staging"],
                      status=ChangeStatus.values[n % len(ChangeStatus.values)], planned_start=now + timedelta(hours=n),
                      planned_end=now + timedelta(hours=n + 1), risk_level="low", risk_score=10,
                      implementer=requester if n % 2 else None)
        for n in range(count)])


def test_the_list_takes_the_same_number_of_queries_for_5_or_120_changes(client, requester, estate,
                                                                          django_assert_max_num_queries):
    client.force_login(requester)
    bulk_changes(5, requester, estate)
    urls = [LIST, LIST + "?mine=either", LIST + "?" + "&".join(f"{k}={v}" for k, v in EMPTY_LIST_FILTERS.items()),
            LIST + "?team=payments&status=draft&status=closed&dates=updated&since=2000-01-01"]
    client.get(LIST)
    few = []
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            numbers(client.get(url))
        few.append(len(queries))
    bulk_changes(115, requester, estate)
    for url, count in zip(urls, few, strict=True):
        # A team filter looks the team up.
        with django_assert_max_num_queries(LIST_QUERY_BOUND + 1), CaptureQueriesContext(connection) as queries:
            numbers(client.get(url))
        assert len(queries) == count, url
    assert len(numbers(client.get(LIST))) == 50
    page_three = client.get(LIST, {"page": 3})
    assert len(numbers(page_three)) == 20 and "Page 3 of 3" in page_three.content.decode()
