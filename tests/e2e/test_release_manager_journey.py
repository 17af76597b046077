"""A release manager's day in a real browser, from the login page: they land on the calendar's week, go to the
month, move an approved change into one of its free slots with the mouse (Move, a slot, confirm) and find its
window there on the change page; then stop the line from the calendar, see the hold on the change it stops (its
page and its row in the CAB queue, no "Start implementing"), lift the lockdown and see the hold gone.
Screenshots of every step land in test-artifacts/."""

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance.calendar.services import window_occurrences_refresh
from governance.changes.services import approval_record, change_request_transition
from governance.models import ChangeRequest, ChangeStatus, Lockdown, MaintenanceWindow
from governance.roles import Role
from tests.e2e.conftest import ARTIFACTS, log_in, screenshot
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def close_up(locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture
def release_world(transactional_db):
    """Production nights (Tuesdays and Thursdays 22:00-02:00 UTC) govern prod. In prod: an approved change to
    payments-api two days ahead, and a scheduled change to the ledger whose window is open now. Rita raised both,
    Carla approved them, Ian carries out the second; Rachel is the release manager."""
    payments = make_team("payments", name="Payments")
    api = make_ci("payments-api", team=payments, criticality=2)
    ledger = make_ci("ledger-db", team=payments, ci_type="database", criticality=2)
    prod = make_environment("prod", 3, is_production=True)
    nights = MaintenanceWindow.objects.create(
        name="Production nights", timezone="UTC", recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=TU,TH",
        start_date=date(2026, 1, 6), start_time=time(22), duration_minutes=240)
    nights.environments.set([prod])
    window_occurrences_refresh(nights)
    rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
    carla = make_user("carla", Role.CAB_MEMBER, first_name="Carla", last_name="Cab")
    ian = make_user("ian", Role.REQUESTER, first_name="Ian", last_name="Engineer")
    rachel = make_user("rachel", Role.RELEASE_MANAGER, first_name="Rachel", last_name="Release")

    def approved(title, ci, start, hours, **fields):
        change = make_change(rita, cis=[ci], environment=prod, title=title, planned_start=start,
                             planned_end=start + timedelta(hours=hours), release_strategy="rolling",
                             strategy_reason="stateless", **fields)
        change = change_request_transition(actor=rita, change=change, target=ChangeStatus.SUBMITTED)
        approval_record(actor=carla, change=change, decision="approve", comment="Backout rehearsed.")
        return ChangeRequest.objects.get(pk=change.pk)

    now = timezone.now().replace(second=0, microsecond=0)
    upgrade = approved("Upgrade payments-api to 4.2", api, (now + timedelta(days=2)).replace(hour=10, minute=0), 1)
    rotation = approved("Rotate the ledger credentials", ledger, now - timedelta(minutes=30), 2, implementer=ian)
    change_request_transition(actor=rachel, change=rotation, target=ChangeStatus.SCHEDULED)
    for change in (upgrade, rotation):
        change.refresh_from_db()
    assert upgrade.status == ChangeStatus.APPROVED and rotation.status == ChangeStatus.SCHEDULED
    return {"upgrade": upgrade, "rotation": rotation, "prod": prod}


def test_a_release_manager_moves_a_change_then_stops_and_restarts_the_line(page, release_world):
    upgrade, rotation = release_world["upgrade"], release_world["rotation"]

    # 1. Landed on the calendar's week.
    log_in(page, "rachel")
    expect(page).to_have_url(re.compile(r"/calendar/\?view=week$"))
    expect(page.get_by_role("heading", name=re.compile("Release calendar"))).to_be_visible()
    expect(page.locator("#today")).to_contain_text(rotation.number)  # its window is open today
    screenshot(page, "journey-rm-1-landed-on-the-week")

    # 2. The month.
    page.select_option("#id_view", "month")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("table.calendar.month")).to_be_visible()
    chip = page.locator(".entry.change", has=page.get_by_role("link", name=upgrade.number))
    if chip.count() == 0:  # near the month's end, its window falls in the next one
        page.get_by_role("link", name="Later →").click()
    expect(chip).to_have_count(1)
    screenshot(page, "journey-rm-2-month")

    # 3. Move the approved change: its free slots, one picked, the move confirmed.
    chip.get_by_role("button", name=f"Move {upgrade.number} to another slot").click()
    panel = page.locator("#move-panel")
    expect(panel).to_contain_text(f"Move {upgrade.number}")
    expect(panel).to_be_in_viewport()
    slots = panel.get_by_role("radio")
    expect(slots).to_have_count(5)
    expect(panel).to_contain_text(f"{upgrade.number} is approved: in another window it goes back to CAB review")
    screenshot(page, "journey-rm-3-free-slots")
    start = datetime.fromisoformat(slots.nth(1).get_attribute("value")).astimezone(UTC)
    end = start + timedelta(hours=1)  # as long as its window was
    # The second: the first night stays free.
    chosen = panel.get_by_label(f"{start:%a %d %b %H:%M}\N{EN DASH}{end:%H:%M} UTC")
    chosen.check()
    expect(chosen).to_be_checked()
    close_up(panel, "journey-rm-3-free-slots-close-up")
    assert ChangeRequest.objects.get(pk=upgrade.pk).planned_start == upgrade.planned_start  # picking moves nothing
    panel.get_by_role("button", name=f"Move {upgrade.number} to the chosen slot").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"{upgrade.number} moved to {start:%Y-%m-%d %H:%M} UTC. It is back in CAB review")
    expect(page).to_have_url(re.compile(r"view=month"))  # still on the month
    screenshot(page, "journey-rm-4-moved")

    # 4. The change page says the new window, and that it awaits the CAB again.
    page.locator(".entry.change").get_by_role("link", name=upgrade.number).click()
    expect(page.get_by_role("heading", name=re.compile(upgrade.number))).to_be_visible()
    window = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"
    expect(page.locator(".facts")).to_contain_text(f"Window (UTC){window}")
    expect(page.locator("#change-status")).to_have_text("CAB review")
    expect(page.locator("#change-state")).not_to_contain_text("approved 20")  # its old approval no longer stands
    expect(page.locator("#history")).to_be_visible()
    screenshot(page, "journey-rm-5-moved-change")
    moved = ChangeRequest.objects.get(pk=upgrade.pk)
    assert (moved.planned_start, moved.planned_end) == (start, end)

    # 5. Before the lockdown: the ledger rotation, whose window is open, may start.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    page.locator("#today").get_by_role("link", name=rotation.number).click()
    expect(page.get_by_role("button", name="Start implementing")).to_be_visible()
    expect(page.locator("#hold")).to_have_count(0)
    screenshot(page, "journey-rm-6-before-lockdown")

    # 6. Stop the line from the calendar, for prod.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    page.get_by_text("Stop the line").click()
    screenshot(page, "journey-rm-7-stop-the-line-form")
    page.get_by_label("Reason").fill("Payments outage INC-4711: stop all production work")
    page.get_by_label("Scope").select_option("prod")
    page.get_by_role("button", name="Declare lockdown").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Lockdown declared: the line is stopped. On hold: {rotation.number}.")
    expect(page.locator("section.lockdown")).to_contain_text(
        "Payments outage INC-4711: stop all production work (prod; declared by Rachel Release)")
    expect(page.locator("#today li", has_text=rotation.number).locator(".warn.held")).to_have_text("on hold")
    screenshot(page, "journey-rm-8-declared")

    # 7. The hold on the change it stops, and its row in the CAB queue.
    page.locator("#today").get_by_role("link", name=rotation.number).click()
    hold = page.locator("#hold")
    expect(hold).to_contain_text("Payments outage INC-4711")
    expect(hold).to_contain_text("Declared by Rachel Release")
    expect(page.get_by_role("button", name="Start implementing")).to_have_count(0)
    expect(page.locator("#history")).to_be_visible()
    screenshot(page, "journey-rm-9-held-change")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Changes", exact=True).click()
    row = page.locator(f'tr[data-number="{rotation.number}"]')
    expect(row.locator(".warn.held")).to_have_text("on hold")
    expect(row.locator(".warn.held")).to_have_attribute("title", re.compile("Payments outage INC-4711"))
    expect(page.locator(f'tr[data-number="{upgrade.number}"] .warn.held')).to_have_count(0)  # back in review
    screenshot(page, "journey-rm-10-queue")

    # 8. Lift it.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    page.get_by_placeholder("Why lift it").fill("INC-4711 resolved")
    page.get_by_role("button", name="Lift").click()
    expect(page.get_by_role("status")).to_contain_text(f"Lockdown lifted. No longer on hold: {rotation.number}.")
    expect(page.locator("section.lockdown")).to_have_count(0)
    screenshot(page, "journey-rm-11-lifted")
    page.locator("#today").get_by_role("link", name=rotation.number).click()
    expect(page.locator("#hold")).to_have_count(0)
    expect(page.get_by_role("button", name="Start implementing")).to_be_visible()
    expect(page.locator("#history")).to_be_visible()
    screenshot(page, "journey-rm-12-released")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Changes", exact=True).click()
    expect(page.locator(f'tr[data-number="{rotation.number}"]')).to_be_visible()
    expect(page.locator(".warn.held")).to_have_count(0)
    screenshot(page, "journey-rm-13-queue-released")
    [lockdown] = Lockdown.objects.all()
    assert lockdown.lifted_by.username == "rachel" and lockdown.lift_reason == "INC-4711 resolved"
    assert page.outside_requests == []
