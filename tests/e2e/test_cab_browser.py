"""The CAB's day in a real browser: the queue, a change, an approval made in place, the change form."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance.changes.services import approval_record, change_request_transition
from governance.models import Approval, ChangeRequest, ChangeStatus
from governance.roles import Role
from tests.e2e.conftest import log_in, screenshot
from tests.factories import link, make_change, make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def change(transactional_db):
    """A normal change to payments-api in staging, submitted by rita and awaiting one CAB member."""
    payments = make_team("payments", name="Payments")
    db = make_ci("payments-db", team=payments, ci_type="database", criticality=2)
    api = make_ci("payments-api", team=payments, criticality=3)
    web = make_ci("online-banking", team=payments, ci_type="application", criticality=2)
    make_ci("dns", team=make_team("platform", name="Platform"), ci_type="network", criticality=3)
    link(api, db)
    link(web, api)
    staging = make_environment("staging", 1)
    rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
    draft = make_change(rita, cis=[api], environment=staging, title="Upgrade payments-api to 4.2",
                        release_strategy="rolling", strategy_reason="stateless service")
    return change_request_transition(actor=rita, change=draft, target=ChangeStatus.SUBMITTED)


def test_a_cab_member_approves_a_change_in_place_from_the_queue(page, change):
    make_user("carla", Role.CAB_MEMBER, first_name="Carla", last_name="Cab")
    log_in(page, "carla")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Changes").click()
    expect(page.get_by_role("heading", name="CAB queue")).to_be_visible()
    row = page.locator(f'tr[data-number="{change.number}"]')
    expect(row).to_contain_text("your approval")
    expect(row).to_contain_text("CAB review")
    screenshot(page, "cab-queue")

    row.get_by_role("link", name=change.number).click()
    expect(page.get_by_role("heading", name=re.compile(change.number))).to_be_visible()
    expect(page.locator("#risk-factors")).to_contain_text("Blast radius")
    expect(page.locator("svg[role=img] text", has_text="online-banking")).to_be_visible()
    expect(page.locator("#history")).to_be_visible()  # the ledger panel loaded by htmx
    expect(page.locator("#change-state")).to_contain_text("needs 1 more")
    screenshot(page, "change-detail-before-approval")

    url = page.url
    page.evaluate("window.__notReloaded = true")
    page.fill("#id_comment", "Backout plan tested in staging; fine by me.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#change-state [data-status]")).to_have_text("Approved")
    expect(page.locator("#change-status")).to_have_text("Approved")  # the heading's badge, out of band
    expect(page.locator("#summary-status")).to_have_text("Approved")
    expect(page.locator("#change-state")).to_contain_text("Your approval is recorded.")
    expect(page.locator("#change-state")).to_contain_text("Backout plan tested in staging")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator("#status-history")).to_contain_text("every required approval given")
    assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
    assert page.url == url
    screenshot(page, "change-detail-approved")

    approval = Approval.objects.get()
    assert approval.approver.username == "carla" and approval.comment.startswith("Backout plan tested")
    assert ChangeRequest.objects.get(pk=change.pk).status == ChangeStatus.APPROVED
    assert page.outside_requests == []


def test_a_requester_sees_no_approve_button_on_their_own_change(page, change):
    log_in(page, "rita")
    page.goto(f"/changes/{change.number}/")
    expect(page.get_by_role("heading", name=re.compile(change.number))).to_be_visible()
    expect(page.locator("#change-state")).to_contain_text("Still needed: 1 approval from CAB member")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_text("Reject…")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel change")).to_be_visible()  # her own move
    screenshot(page, "change-detail-own-change")


def test_a_decision_on_a_stale_page_is_refused_in_place(page, change):
    make_user("carla", Role.CAB_MEMBER)
    colin = make_user("colin", Role.CAB_MEMBER)
    log_in(page, "carla")
    page.goto(f"/changes/{change.number}/")
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    approval_record(actor=colin, change=change, decision="approve")  # meanwhile, someone else approves
    page.evaluate("window.__notReloaded = true")
    page.get_by_text("Reject…").click()  # a rejection asks why, then for a second click
    page.fill("#id_reject_comment", "No backout test")
    page.locator("#change-state").screenshot(path=str(screenshot(page, "change-detail-reject-confirm")))
    page.get_by_role("button", name=f"Reject {change.number}").click()
    expect(page.locator("#change-state [role=alert]")).to_contain_text("not awaiting approval")  # a 409, swapped in
    expect(page.locator("#change-state [data-status]")).to_have_text("Approved")
    assert page.evaluate("window.__notReloaded") is True
    screenshot(page, "change-detail-stale-refusal")
    assert Approval.objects.count() == 1


def test_a_requester_raises_a_change_picking_cis_from_the_cmdb(page, change):
    log_in(page, "rita")
    page.goto("/changes/")
    page.get_by_role("link", name="Raise a change").click()
    page.fill("#id_title", "Rotate payments-db credentials")
    page.fill("#ci-search", "payments")
    matches = page.get_by_role("list", name="Matching CIs")
    expect(matches).to_contain_text("payments-db")
    matches.get_by_label(re.compile("payments-db")).check()
    page.fill("#ci-search", "dns")  # a new search keeps what was ticked
    expect(page.get_by_role("list", name="Matching CIs")).to_contain_text("dns")
    expect(page.get_by_role("list", name="Chosen CIs").get_by_label(re.compile("payments-db"))).to_be_checked()
    page.get_by_role("list", name="Matching CIs").get_by_label(re.compile("dns")).check()
    page.select_option("#id_environment", "staging")
    start = timezone.now() + timedelta(days=3)
    page.fill("#id_planned_start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_planned_end", (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_implementation_plan", "1. rotate the secret\n2. restart the pool")
    page.fill("#id_backout_plan", "restore the previous secret")
    page.fill("#id_feature_flags", "rotate-v2")
    screenshot(page, "change-form")
    page.get_by_role("button", name="Save draft").click()

    expect(page.get_by_role("heading", name=re.compile("Rotate payments-db credentials"))).to_be_visible()
    expect(page.locator("#affected")).to_contain_text("payments-db")
    expect(page.locator("#affected")).to_contain_text("dns")
    created = ChangeRequest.objects.get(title="Rotate payments-db credentials")
    assert sorted(created.affected_cis.values_list("name", flat=True)) == ["dns", "payments-db"]
    assert created.implementation_plan == "1. rotate the secret\n2. restart the pool"
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("#change-status")).to_have_text("CAB review")
    screenshot(page, "change-detail-submitted")
