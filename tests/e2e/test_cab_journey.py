"""A CAB member's day in a real browser, from the login page: they land on what awaits their approval, narrow the
queue with its filters (no filter left at "any" is an error), approve one change, reject another with a reason
after a confirmation, and see the queue empty out. Screenshots of every step land in test-artifacts/."""

import re

import pytest
from playwright.sync_api import expect

from governance.changes.services import approval_record, change_request_transition
from governance.models import Approval, ChangeRequest, ChangeStatus
from governance.roles import Role
from tests.e2e.conftest import log_in, screenshot
from tests.factories import link, make_change, make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue(transactional_db):
    """Three changes by rita awaiting a CAB member (a normal one in staging, a normal and an emergency one in
    prod), one already approved, and a draft; carla and colin sit on the CAB."""
    payments = make_team("payments", name="Payments")
    platform = make_team("platform", name="Platform")
    db = make_ci("payments-db", team=payments, ci_type="database", criticality=2)
    api = make_ci("payments-api", team=payments, criticality=3)
    dns = make_ci("dns", team=platform, ci_type="network", criticality=3)
    link(api, db)
    staging = make_environment("staging", 1)
    prod = make_environment("prod", 2, is_production=True)
    rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
    make_user("carla", Role.CAB_MEMBER, first_name="Carla", last_name="Cab")
    colin = make_user("colin", Role.CAB_MEMBER, first_name="Colin", last_name="Cab")

    def in_review(title, cis, environment, hours, **fields):
        change = make_change(rita, cis=cis, environment=environment, title=title, start_in_hours=hours,
                             release_strategy="rolling", strategy_reason="stateless", **fields)
        return change_request_transition(actor=rita, change=change, target=ChangeStatus.SUBMITTED)

    changes = {
        "staging": in_review("Upgrade payments-api to 4.2", [api], staging, 24),
        "prod": in_review("Rotate payments-db credentials", [db], prod, 48),
        "emergency": in_review("Patch the DNS resolvers", [dns], prod, 6, change_type="emergency"),
        "approved": in_review("Raise the DNS cache TTL", [dns], staging, 72),
    }
    approval_record(actor=colin, change=changes["approved"], decision="approve")
    changes["draft"] = make_change(rita, cis=[api], environment=staging, title="A draft nobody reviews yet")
    return changes


def rows(page):
    return page.locator("#queue-results tbody tr[data-number]")


def expect_no_filter_error(page) -> None:
    expect(page.locator("#queue-results")).to_be_visible()
    expect(page.locator("#queue-results [role=alert]")).to_have_count(0)
    expect(page.get_by_text("is not one of the available choices")).to_have_count(0)


def test_a_cab_member_lands_on_what_awaits_them_filters_approves_and_rejects(page, queue):
    log_in(page, "carla")

    # 1. Landed on the queue, narrowed to what awaits my approval.
    expect(page).to_have_url(re.compile(r"/changes/\?awaiting_me=on$"))
    expect(page.get_by_role("heading", name="CAB queue")).to_be_visible()
    expect(page.get_by_label("Awaiting my approval")).to_be_checked()
    expect(rows(page)).to_have_count(3)
    for key in ("staging", "prod", "emergency"):
        expect(page.locator(f'tr[data-number="{queue[key].number}"]')).to_contain_text("your approval")
    expect(page.locator("#queue-results")).to_contain_text("3 open changes awaiting your approval")
    expect_no_filter_error(page)
    screenshot(page, "journey-1-landed-on-my-approvals")

    # 2. Filters, each swapped in place by htmx, the others sent empty: never an error.
    page.select_option("#id_change_type", "emergency")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-number", queue["emergency"].number)
    expect(page).to_have_url(re.compile(r"change_type=emergency"))
    expect_no_filter_error(page)
    screenshot(page, "journey-2-filtered-to-emergencies")

    page.select_option("#id_change_type", "")  # back to any type
    page.select_option("#id_environment", "prod")
    expect(rows(page)).to_have_count(2)
    expect_no_filter_error(page)
    page.select_option("#id_status", "cab_review")
    expect(rows(page)).to_have_count(2)
    expect_no_filter_error(page)
    screenshot(page, "journey-3-filtered-to-prod-in-review")

    page.select_option("#id_environment", "")
    page.select_option("#id_status", "")
    page.get_by_label("Awaiting my approval").uncheck()  # the whole queue, the approved change too
    expect(rows(page)).to_have_count(4)
    expect(page.locator(f'tr[data-number="{queue["approved"].number}"]')).not_to_contain_text("your approval")
    expect_no_filter_error(page)
    page.get_by_label("Awaiting my approval").check()
    expect(rows(page)).to_have_count(3)
    expect_no_filter_error(page)
    screenshot(page, "journey-4-awaiting-me-again")

    # 3. Open one and approve it in place.
    staging = queue["staging"]
    page.locator(f'tr[data-number="{staging.number}"]').get_by_role("link", name=staging.number).click()
    expect(page.get_by_role("heading", name=re.compile(staging.number))).to_be_visible()
    expect(page.locator("#history")).to_be_visible()  # the ledger's panel, loaded in place
    expect(page.locator("#history")).not_to_contain_text("requester_id")
    screenshot(page, "journey-5-change-before-approval")
    page.fill("#id_comment", "Backout plan tested in staging.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#change-state")).to_contain_text("Your approval is recorded.")
    expect(page.locator("#change-status")).to_have_text("Approved")
    expect(page.locator("#history article").first).to_contain_text("Approved")  # the ledger panel, loaded again
    screenshot(page, "journey-6-change-approved")

    # 4. Back to the queue; reject another, which asks why and for a second click.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Changes", exact=True).click()
    page.get_by_label("Awaiting my approval").check()
    expect(rows(page)).to_have_count(2)
    rejected = queue["prod"]
    page.locator(f'tr[data-number="{rejected.number}"]').get_by_role("link", name=rejected.number).click()
    expect(page.get_by_role("heading", name=re.compile(rejected.number))).to_be_visible()
    page.get_by_text("Reject…").click()
    reject = page.get_by_role("button", name=f"Reject {rejected.number}")
    expect(reject).to_be_visible()
    reject.click()  # no reason yet: the browser asks for one and nothing is sent
    expect(page.locator("#change-status")).to_have_text("CAB review")
    page.fill("#id_reject_comment", "The credentials rotation has no tested backout.")
    screenshot(page, "journey-7-rejection-confirmed-with-a-reason")
    reject.click()
    expect(page.locator("#change-state")).to_contain_text("Your rejection is recorded.")
    expect(page.locator("#change-status")).to_have_text("Rejected")
    expect(page.locator("#history article").first).to_contain_text("Rejected")  # the ledger panel, loaded again
    screenshot(page, "journey-8-change-rejected")

    # 5. What still awaits me.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/changes/\?awaiting_me=on$"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-number", queue["emergency"].number)
    screenshot(page, "journey-9-one-left")

    decisions = {a.change_id: (a.decision, a.comment) for a in Approval.objects.filter(approver__username="carla")}
    assert decisions == {staging.pk: ("approve", "Backout plan tested in staging."),
                         rejected.pk: ("reject", "The credentials rotation has no tested backout.")}
    assert ChangeRequest.objects.get(pk=staging.pk).status == ChangeStatus.APPROVED
    assert ChangeRequest.objects.get(pk=rejected.pk).status == ChangeStatus.REJECTED
    assert page.outside_requests == []
