"""Two journeys in a real browser, start to end. A requester raises a change, is warned of a hard freeze and of an
implementer who alone could approve it before submitting, fixes both, finds the draft again among their changes,
submits it and is told by mail, with a link that opens, when a CAB member approves it. An administrator issues a
token for the pipeline's service account, sees it once, and revokes it after confirming. A release manager finds a
change a lockdown holds, in the queue and on its page."""

import re
from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from cmdb.models import ConfigurationItem, Environment
from governance.access.services import api_token_authenticate
from governance.calendar.services import lockdown_declare, window_occurrences_refresh
from governance.celery import app
from governance.changes.services import approval_record, change_request_transition
from governance.models import ApiToken, ChangeRequest, ChangeStatus, FreezeWindow
from governance.roles import Role
from tests.e2e.conftest import ARTIFACTS, log_in, screenshot
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WINDOW = "%Y-%m-%dT%H:%M"


@pytest.fixture
def mail_sent_at_once(settings, live_server):
    """The live server's mail tasks run in its own thread as the transaction commits (no worker here), into
    Django's test outbox; links are made from the live server's address, so the test can follow them."""
    settings.CHANGEBOARD_BASE_URL = live_server.url
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield mail.outbox
    app.conf.task_always_eager = eager


def close_up(locator, name: str) -> None:
    """A screenshot of one part of the page, to read what the full page shows too small."""
    ARTIFACTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def new_page(browser, live_server):
    """A second person's browser, recording any request outside the app as the `page` fixture does."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    other = context.new_page()
    outside: list[str] = []
    other.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    other.outside_requests = outside
    return context, other


def links_in(message) -> list[str]:
    return re.findall(r"https?://\S+", message.body)


def hour(days: float = 0) -> datetime:
    return (timezone.now() + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def estate(transactional_db):
    """statements-api in staging, a hard freeze over staging in ten days, and the people: Rita raises changes,
    Ivan is the only CAB member, Ian an engineer who approves nothing."""
    team = make_team("payments", name="Payments")
    make_ci("statements-api", team=team, criticality=3)
    staging = make_environment("staging", 2)
    freeze_start = hour(days=10)
    freeze = FreezeWindow.objects.create(name="Year-end close", timezone="UTC", start_date=freeze_start.date(),
                                         start_time=freeze_start.time(), duration_minutes=48 * 60, severity="hard")
    freeze.environments.set([staging])
    window_occurrences_refresh(freeze)
    people = {
        "rita": make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester",
                          email="rita@bank.example"),
        "ivan": make_user("ivan", Role.CAB_MEMBER, first_name="Ivan", last_name="Implementer",
                          email="ivan@bank.example"),
        "ian": make_user("ian", Role.REQUESTER, first_name="Ian", last_name="Engineer", email="ian@bank.example"),
    }
    return {"freeze_start": freeze_start, **people}


def test_a_requester_is_warned_before_submitting_fixes_the_change_and_hears_of_its_approval(
        page, browser, live_server, estate, mail_sent_at_once):
    freeze_start = estate["freeze_start"]
    log_in(page, "rita")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Changes", exact=True).click()
    page.get_by_role("link", name="Raise a change").click()
    expect(page.get_by_role("heading", name="Raise a change")).to_be_visible()
    page.fill("#id_title", "Rotate the statements signing keys")
    page.fill("#ci-search", "statements")
    page.get_by_role("list", name="Matching CIs").get_by_label(re.compile("statements-api")).check()
    page.select_option("#id_implementer", label="Ivan Implementer (ivan)")
    page.select_option("#id_environment", "staging")
    inside = freeze_start + timedelta(hours=20)  # in the middle of the year-end close
    page.fill("#id_planned_start", inside.strftime(WINDOW))
    page.fill("#id_planned_end", (inside + timedelta(hours=1)).strftime(WINDOW))
    page.fill("#id_implementation_plan", "1. publish the new key\n2. switch signing\n3. retire the old key")
    page.fill("#id_backout_plan", "switch signing back to the old key")
    page.fill("#id_test_evidence", "rehearsed in staging-2, run 881")
    screenshot(page, "journey-requester-1-form")
    page.get_by_role("button", name="Save draft").click()

    # The draft's page warns of both before anything is submitted.
    expect(page.get_by_role("heading", name=re.compile("Rotate the statements signing keys"))).to_be_visible()
    number = ChangeRequest.objects.get(title="Rotate the statements signing keys").number
    advisories = page.locator("#advisories")
    expect(advisories.get_by_role("heading")).to_have_text("Before you submit")
    expect(advisories).to_contain_text(
        f"The window lies inside the hard freeze Year-end close ({freeze_start:%Y-%m-%d %H:%M} to "
        f"{freeze_start + timedelta(hours=48):%Y-%m-%d %H:%M} UTC): it will be refused at approval; move it.")
    expect(advisories).to_contain_text("Nobody but the implementer (Ivan Implementer) holds CAB member: nobody can "
                                       "approve this change; choose another implementer.")
    expect(page.get_by_role("button", name="Submit for review")).to_be_visible()  # warned, not stopped
    screenshot(page, "journey-requester-2-warned")
    close_up(advisories, "journey-requester-2-warned-close-up")

    # The form shows what to fix; the requester moves the window past the freeze and picks another implementer.
    advisories.get_by_role("link", name="Edit the change").click()
    expect(page.get_by_role("heading", name=f"Edit {number}")).to_be_visible()
    expect(page.locator("#advisories")).to_contain_text("hard freeze Year-end close")
    screenshot(page, "journey-requester-3-fixing")
    after = freeze_start + timedelta(hours=60)
    page.fill("#id_planned_start", after.strftime(WINDOW))
    page.fill("#id_planned_end", (after + timedelta(hours=1)).strftime(WINDOW))
    page.select_option("#id_implementer", label="Ian Engineer (ian)")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash")).to_contain_text(f"{number} saved.")
    expect(page.locator("#advisories")).to_have_count(0)
    screenshot(page, "journey-requester-4-fixed")

    # Later: the draft is found again among the requester's changes.
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My changes").click()
    row = page.locator(f'tr[data-number="{number}"]')
    expect(row).to_contain_text("Draft")
    screenshot(page, "journey-requester-5-my-changes")
    row.get_by_role("link", name=number).click()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("#change-status")).to_have_text("CAB review")
    expect(page.locator("#advisories")).to_have_count(0)
    screenshot(page, "journey-requester-6-submitted")

    # Ivan, asked by mail, follows the link and approves.
    [asked] = [m for m in mail_sent_at_once if m.to == ["ivan@bank.example"]]
    assert asked.subject == f"Approval needed: {number} Rotate the statements signing keys"
    [link] = links_in(asked)
    assert link == f"{live_server.url}/changes/{number}/"
    context, ivans = new_page(browser, live_server)
    try:
        log_in(ivans, "ivan")
        ivans.goto(link)
        ivans.fill("#id_comment", "Outside the freeze now; backout rehearsed.")
        ivans.get_by_role("button", name="Approve").click()
        expect(ivans.locator("#change-state [data-status]")).to_have_text("Approved")
        screenshot(ivans, "journey-requester-7-approved-by-cab")
        assert ivans.outside_requests == []
    finally:
        context.close()

    # Rita (and Ian, who will carry it out) are told, with a link that opens the change.
    told = {m.to[0]: m for m in mail_sent_at_once if m.subject.startswith("Approved: ")}
    assert sorted(told) == ["ian@bank.example", "rita@bank.example"]
    message = told["rita@bank.example"]
    assert message.subject == f"Approved: {number} Rotate the statements signing keys"
    assert "Approved: every required approval given" in message.body
    [link] = links_in(message)
    page.goto(link)
    expect(page.locator("#change-status")).to_have_text("Approved")
    expect(page.locator("#change-state")).to_contain_text("Outside the freeze now")
    expect(page.locator("#history")).to_be_visible()  # the ledger's panel, loaded by htmx
    screenshot(page, "journey-requester-8-told")
    assert ChangeRequest.objects.get(number=number).status == ChangeStatus.APPROVED
    assert page.outside_requests == []


def test_an_admin_issues_a_pipeline_token_sees_it_once_and_revokes_it_after_confirming(page, transactional_db):
    make_user("ada", Role.ADMIN, first_name="Ada", last_name="Admin", is_staff=True)
    pipeline = make_user("pipeline", Role.SERVICE_ACCOUNT)
    make_user("rita", Role.REQUESTER)  # a person: never offered as an owner
    make_ci("statements-api", team=make_team("payments"))
    make_environment("staging", 2)
    make_environment("prod", 3, is_production=True)

    log_in(page, "ada")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    owners = page.locator("#id_owner option")
    expect(owners).to_have_text(["Ada Admin (ada)", "pipeline"])
    page.select_option("#id_owner", label="pipeline")
    page.fill("#id_name", "statements deploy")
    page.fill("#id_services", "statements-api")
    prod = page.get_by_label("prod", exact=True)
    prod.check()
    # The checkbox sits just before its label's text, not far off in a wide box.
    box, text = prod.bounding_box(), page.locator("label", has=prod).bounding_box()
    assert box["x"] - text["x"] < 4 and box["width"] < 30, (box, text)
    close_up(page.locator("form.token-form"), "journey-admin-1-form-close-up")
    screenshot(page, "journey-admin-1-form")
    page.get_by_role("button", name="Create token").click()

    issued = page.locator("#issued")
    expect(issued).to_contain_text("Token “statements deploy” created for pipeline")
    secret = page.locator("#new-token").inner_text().strip()
    token = api_token_authenticate(secret)
    assert token is not None and token.user == pipeline and token.name == "statements deploy"
    assert [env.name for env in token.environments.all()] == ["prod"]
    row = page.locator(f'tr[data-token="{token.pk}"]')
    expect(row).to_contain_text("pipeline")
    expect(row).to_contain_text("active")
    screenshot(page, "journey-admin-2-issued")

    page.goto("/tokens/")  # shown once: not on the next visit
    expect(page.locator("#new-token")).to_have_count(0)
    assert secret not in page.content()
    row.get_by_role("link", name="Revoke…").click()

    expect(page.get_by_role("heading", name="Revoke the token “statements deploy”?")).to_be_visible()
    expect(page.locator("main")).to_contain_text("cannot be undone")
    screenshot(page, "journey-admin-3-confirm")
    assert api_token_authenticate(secret) is not None  # asking revoked nothing
    page.get_by_role("button", name="Revoke “statements deploy”").click()

    expect(page.locator(".flash")).to_contain_text("Token “statements deploy” revoked.")
    expect(page.locator(f'tr[data-token="{token.pk}"]')).to_contain_text("revoked")
    expect(page.locator(f'tr[data-token="{token.pk}"]').get_by_role("link", name="Revoke…")).to_have_count(0)
    screenshot(page, "journey-admin-4-revoked")
    assert api_token_authenticate(secret) is None
    assert ApiToken.objects.get(pk=token.pk).revoked_by.username == "ada"
    assert page.outside_requests == []


def test_a_release_manager_sees_a_held_change_in_the_queue_and_on_its_page(page, estate):
    rachel = make_user("rachel", Role.RELEASE_MANAGER, first_name="Rachel", last_name="Release")
    change = make_change(estate["rita"], cis=[ConfigurationItem.objects.get(name="statements-api")],
                         environment=Environment.objects.get(name="staging"), implementer=estate["ian"],
                         title="Rotate the statements signing keys")
    change = change_request_transition(actor=estate["rita"], change=change, target=ChangeStatus.SUBMITTED)
    approval_record(actor=estate["ivan"], change=change, decision="approve")
    change_request_transition(actor=rachel, change=change, target=ChangeStatus.SCHEDULED)
    commander = make_user("ines", Role.INCIDENT_COMMANDER, first_name="Ines", last_name="Incident")
    lockdown_declare(actor=commander, reason="Payments outage INC-4711: stop all statements work",
                     scope={"everything": True})

    log_in(page, "rachel")
    page.goto("/changes/")
    row = page.locator(f'tr[data-number="{change.number}"]')
    badge = row.locator(".warn.held")
    expect(badge).to_have_text("on hold")
    expect(badge).to_have_attribute("title", re.compile("Payments outage INC-4711.*declared by Ines Incident"))
    close_up(row, "journey-hold-1-queue-row")
    row.get_by_role("link", name=change.number).click()
    hold = page.locator("#hold")
    expect(hold).to_contain_text("On hold: a lockdown stops the line")
    expect(hold).to_contain_text("Payments outage INC-4711")
    expect(hold).to_contain_text("Declared by Ines Incident")
    expect(hold.get_by_role("link", name="see it on the release calendar")).to_have_attribute("href", "/calendar/")
    expect(page.get_by_role("button", name="Start implementing")).to_have_count(0)
    screenshot(page, "journey-hold-2-change")
    close_up(page.locator("#hold"), "journey-hold-2-close-up")
    assert page.outside_requests == []
