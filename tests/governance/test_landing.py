"""Where each role lands after logging in: what awaits them, unless the login page was asked for another page."""

import pytest
from guardian.shortcuts import assign_perm

from governance.roles import Role
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

QUEUE_AWAITING_ME = "/changes/?awaiting_me=on"
CALENDAR_WEEK = "/calendar/?view=week"
MY_CHANGES = "/changes/all/?mine=either"
EVIDENCE = "/audit/evidence/"
CMDB = "/cmdb/"


def log_in(client, username: str, status: int = 200, **extra) -> str:
    """Logs in through the login form and follows the redirects; the address landed on, which answers `status`."""
    response = client.post("/login/", {"username": username, "password": "pw-for-tests", **extra}, follow=True)
    assert response.status_code == status, response.redirect_chain
    path, _ = response.redirect_chain[-1]
    return path


@pytest.mark.parametrize(("roles", "lands_on"), [
    ((Role.CAB_MEMBER,), QUEUE_AWAITING_ME),
    ((Role.SRE,), QUEUE_AWAITING_ME),
    ((Role.BUSINESS_OWNER,), QUEUE_AWAITING_ME),
    ((Role.COMPLIANCE_OFFICER,), QUEUE_AWAITING_ME),
    ((Role.RELEASE_MANAGER,), CALENDAR_WEEK),
    ((Role.REQUESTER,), MY_CHANGES),
    ((Role.AUDITOR,), EVIDENCE),
    ((Role.ADMIN,), CMDB),
    ((Role.REQUESTER, Role.CAB_MEMBER), QUEUE_AWAITING_ME),  # approvals wait first
    ((Role.REQUESTER, Role.RELEASE_MANAGER), CALENDAR_WEEK),
    ((Role.AUDITOR, Role.REQUESTER), MY_CHANGES),
])
def test_each_role_lands_on_what_awaits_it(client, roles, lands_on):
    make_user("person", *roles)
    assert log_in(client, "person") == lands_on


def test_a_person_without_a_role_lands_on_the_cmdb_which_tells_them_they_may_not_read_it(client):
    make_user("visitor")
    assert log_in(client, "visitor", status=403) == CMDB


def test_an_approver_for_one_team_only_lands_on_the_queue_too(client):
    person = make_user("team-sre")
    assign_perm("cmdb.approve_as_sre", person, make_team("payments"))
    assert log_in(client, "team-sre") == QUEUE_AWAITING_ME


def test_a_login_asked_for_another_page_lands_there(client):
    make_user("carla", Role.CAB_MEMBER)
    response = client.post("/login/", {"username": "carla", "password": "pw-for-tests", "next": "/calendar/"})
    assert response["Location"] == "/calendar/"
    client.logout()
    response = client.get("/calendar/")  # the login page keeps where the person was going
    assert response["Location"] == "/login/?next=/calendar/"
    assert log_in(client, "carla", next="/calendar/") == "/calendar/"


def test_a_login_with_no_next_goes_home_which_sends_each_role_on(client):
    make_user("rita", Role.REQUESTER)
    response = client.post("/login/", {"username": "rita", "password": "pw-for-tests"})
    assert response["Location"] == "/"
    assert client.get("/")["Location"] == MY_CHANGES


def test_the_home_page_asks_a_visitor_to_log_in_first(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"
