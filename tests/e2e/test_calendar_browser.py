"""The release calendar in a real browser, at the widths people use (1366 and 1920 pixels): the Move button of
every change is visible and not cut off in the month and the week, and moving a change into a free slot works
(a slot picked, the move confirmed).
Screenshots land in test-artifacts/."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance.models import ChangeStatus
from governance.roles import Role
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def calendar_week(transactional_db):
    """Two changes by rita scheduled side by side next Tuesday night in prod, and a third on Thursday."""
    api = make_ci("payments-api", team=make_team("payments", name="Payments"), criticality=3)
    prod = make_environment("prod", 2, is_production=True)
    rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
    make_user("rachel", Role.RELEASE_MANAGER, first_name="Rachel", last_name="Release")
    now = timezone.now()
    tuesday = (now + timedelta(days=8 - now.weekday())).replace(hour=22, minute=0, second=0, microsecond=0)
    changes = [make_change(rita, cis=[api], environment=prod, status=ChangeStatus.SCHEDULED, title=title,
                           planned_start=start, planned_end=start + timedelta(hours=hours))
               for title, start, hours in (("Rotate the ledger credentials", tuesday, 1),
                                           ("Upgrade payments-api to 4.2 on JVM 21", tuesday, 2),
                                           ("Add idempotency keys", tuesday + timedelta(days=2), 2))]
    return {"changes": changes, "week": tuesday.date().isoformat()}


@pytest.mark.parametrize("width", [1366, 1920])
def test_the_move_control_is_visible_and_usable_on_the_calendar_month_and_week(page, calendar_week, width):
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "rachel")
    expect(page).to_have_url(re.compile(r"/calendar/\?view=week$"))  # a release manager lands on the week
    for view in ("month", "week"):
        page.goto(f"/calendar/?view={view}&date={calendar_week['week']}")
        for change in calendar_week["changes"]:
            move = page.get_by_role("button", name=f"Move {change.number} to another slot")
            move.scroll_into_view_if_needed()
            expect(move).to_be_visible()
            # Nothing clips or covers it: the element at its centre is the button itself.
            assert move.evaluate("""button => {
                const box = button.getBoundingClientRect();
                const chip = button.closest('.entry, .block').getBoundingClientRect();
                const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
                return hit === button && box.width > 20 && box.right <= chip.right + 1 && box.bottom <= chip.bottom + 1;
            }"""), (view, width, change.number)
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, f"calendar-{view}-{width}")

    # Move opens the change's free slots in a panel in view; one is picked and the move confirmed.
    moved = calendar_week["changes"][1]
    page.get_by_role("button", name=f"Move {moved.number} to another slot").click()
    panel = page.locator("#move-panel")
    expect(panel).to_contain_text(f"Move {moved.number}")
    expect(panel).to_be_in_viewport()
    slots = panel.get_by_role("radio", name=re.compile(r"UTC$"))
    expect(slots.first).to_be_visible()
    slots.first.check()
    screenshot(page, f"calendar-week-{width}-move-panel")
    panel.get_by_role("button", name=f"Move {moved.number} to the chosen slot").click()
    expect(page.get_by_role("status")).to_contain_text(f"{moved.number} moved to")
    expect(page).to_have_url(re.compile(r"view=week"))  # back on the week it was moved from
    moved.refresh_from_db()
    assert moved.status == ChangeStatus.CAB_REVIEW  # a new window goes back to review
    assert page.outside_requests == []
