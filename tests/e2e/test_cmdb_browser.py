import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot
from tests.factories import link, make_ci, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def estate():
    payments, platform = make_team("payments", name="Payments"), make_team("platform", name="Platform")
    network = make_ci("core-network", team=platform, ci_type="network", criticality=1)
    cluster = make_ci("k8s-prod", team=platform, ci_type="cluster", criticality=1)
    db = make_ci("payments-db", team=payments, ci_type="database", criticality=1, sox_scoped=True)
    api = make_ci("payments-api", team=payments, criticality=1, tags=["pci"])
    web = make_ci("online-banking", team=payments, ci_type="application", criticality=2)
    link(cluster, network)
    link(db, network, "runs_on")
    link(api, db)
    link(api, cluster, "runs_on")
    link(web, api)
    return {"network": network, "api": api}


def test_a_cab_member_logs_in_searches_the_cmdb_and_sees_a_blast_radius(page, estate):
    make_user("carla", "cab_member")
    page.goto("/cmdb/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/cmdb/"))
    log_in(page, "carla")
    expect(page.get_by_role("heading", name="CAB queue")).to_be_visible()  # a CAB member lands on her queue
    page.get_by_role("navigation", name="Main").get_by_role("link", name="CMDB").click()
    expect(page.get_by_role("heading", name="Configuration items")).to_be_visible()
    expect(page.locator("#ci-results tbody tr")).to_have_count(5)

    page.fill("#id_q", "payments")  # htmx swaps the results in place
    expect(page.locator("#ci-results tbody tr")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"q=payments"))
    screenshot(page, "cmdb-list-search")

    page.get_by_role("link", name="payments-db").click()
    expect(page.get_by_role("heading", name=re.compile("payments-db"))).to_be_visible()
    svg = page.locator("svg[role=img]")
    expect(svg).to_be_visible()
    expect(svg.locator("text", has_text="payments-api")).to_be_visible()
    expect(svg.locator("text", has_text="online-banking")).to_be_visible()
    expect(page.get_by_text("payments-db ← payments-api ← online-banking")).to_be_visible()
    screenshot(page, "ci-detail-blast-radius")

    svg.locator("a", has_text="core-network").click()  # the graph navigates
    expect(page.get_by_role("heading", name=re.compile("core-network"))).to_be_visible()
    assert page.outside_requests == []


def test_a_user_without_a_role_is_refused_the_cmdb(page, estate):
    make_user("visitor")
    log_in(page, "visitor")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_a_wrong_password_is_refused(page, estate):
    make_user("carla", "cab_member")
    log_in(page, "carla", "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page).to_have_url(re.compile(r"/login/"))
