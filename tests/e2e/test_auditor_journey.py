"""An auditor's day in a real browser, from the login page: they land on the evidence home and open the ledger; find
the changes completed and those rejected in a month through the list of every change; narrow the ledger to a range
of time with its From and Until pickers; read on the key page how each event's hash is made, export the range as CSV
and recompute one row's hash by those words alone, finding the hash the ledger stored. Screenshots of every step
land in test-artifacts/."""

import csv
import hashlib
import io
import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance.models import AuditEvent, ChangeStatus
from governance.roles import Role
from tests.e2e.conftest import ARTIFACTS, log_in, screenshot
from tests.factories import make_change, make_ci, make_environment, make_team, make_user, note, sealed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PICKER = "%Y-%m-%dT%H:%M:%S"


def close_up(locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def month_before(day):
    """The first and last days of the month before `day`'s."""
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


@pytest.fixture
def audit_world(transactional_db):
    """Last month: a change completed, one rejected, one failed; the month before, a change completed; a change
    scheduled ahead. In the ledger, a night's events placed at 01:00, 02:00 and 03:00 eight days ago, and one on
    each side of them."""
    first, last = month_before(timezone.now().date())
    api = make_ci("payments-api", team=make_team("payments", name="Payments"), criticality=2)
    prod = make_environment("prod", 3, is_production=True)
    rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
    make_user("audrey", Role.AUDITOR, first_name="Audrey", last_name="Auditor")

    def change(title, status, day, hour=22):
        start = datetime.combine(day, time(hour), tzinfo=UTC)
        return make_change(rita, cis=[api], environment=prod, title=title, status=status, planned_start=start,
                           planned_end=start + timedelta(hours=1))

    changes = {
        "completed": change("Upgrade payments-api to 4.1", ChangeStatus.COMPLETED, first + timedelta(days=9)),
        "rejected": change("Drop the legacy card table", ChangeStatus.REJECTED, first + timedelta(days=14)),
        "failed": change("Rotate the HSM keys", ChangeStatus.FAILED, first + timedelta(days=3)),
        "earlier": change("Upgrade payments-api to 4.0", ChangeStatus.COMPLETED, first - timedelta(days=10)),
        "ahead": change("Upgrade payments-api to 4.2", ChangeStatus.SCHEDULED, last + timedelta(days=5)),
    }
    night = datetime.combine(timezone.now().date() - timedelta(days=8), time(0), tzinfo=UTC)
    events = {
        "before": night - timedelta(hours=2),
        "first": night + timedelta(hours=1),
        "second": night + timedelta(hours=2, minutes=30, seconds=15),
        "third": night + timedelta(hours=3, minutes=59, seconds=59),
        "after": night + timedelta(hours=4),
    }
    for label, when in events.items():
        note(f"night batch: {label}", actor="batch-runner", action="note", object_type="payments.batch", when=when)
    sealed()
    return {"changes": changes, "period": (first, last), "night": night, "events": events}


def test_an_auditor_reviews_a_month_narrows_the_ledger_and_verifies_a_row_by_the_key_page(page, audit_world):
    changes, (first, last) = audit_world["changes"], audit_world["period"]

    # 1. Landed on the evidence home; the ledger is a click away.
    log_in(page, "audrey")
    expect(page).to_have_url(re.compile(r"/audit/evidence/$"))
    page.get_by_role("link", name="Audit ledger").click()
    expect(page).to_have_url(re.compile(r"/audit/$"))
    expect(page.get_by_role("heading", name="Audit ledger")).to_be_visible()
    expect(page.get_by_label("Actor kind").locator("option").first).to_have_text("any")
    # A change written whole (some fifty fields) is folded to a line; its fields open on a click.
    created = page.locator("table.audit tbody tr", has_text=changes["completed"].number).filter(has_text="create")
    fields = created.locator("td.changes details")
    expect(fields.locator("summary")).to_have_text(re.compile(r"^\d+ fields$"))
    expect(fields.get_by_text("title:")).not_to_be_visible()
    screenshot(page, "journey-auditor-1-landed-on-the-ledger")
    fields.locator("summary").click()
    expect(fields).to_contain_text("title: — → Upgrade payments-api to 4.1")

    # 2. Last month's completed changes, then its rejected ones, in the list of every change.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Changes", exact=True).click()
    page.get_by_role("link", name="All changes").click()
    screenshot(page, "journey-auditor-2-all-changes")
    rows = page.locator("#change-results tbody tr[data-number]")
    page.get_by_label("Dates of").select_option("window")
    page.get_by_label("From").fill(first.isoformat())
    page.get_by_label("To").fill(last.isoformat())
    page.get_by_label("Status").select_option("completed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-number", changes["completed"].number)
    screenshot(page, "journey-auditor-3-completed-last-month")
    page.get_by_label("Status").select_option("rejected")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-number", changes["rejected"].number)
    screenshot(page, "journey-auditor-4-rejected-last-month")

    # 3. The ledger narrowed to the night with its From and Until pickers (UTC): only the night's three events.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    night, events = audit_world["night"], audit_world["events"]
    page.get_by_label("From (UTC)").fill((night + timedelta(hours=1)).strftime(PICKER))
    page.get_by_label("Until (UTC)").fill((night + timedelta(hours=4)).strftime(PICKER))
    page.get_by_role("button", name="Search").click()
    ledger = page.locator("table.audit tbody tr")
    expect(ledger).to_have_count(3)
    for row, key in zip(ledger.all(), ("third", "second", "first"), strict=True):  # newest first
        expect(row).to_contain_text(f"night batch: {key}")
        expect(row.locator("td").nth(1)).to_have_text(f"{events[key]:%Y-%m-%d %H:%M:%S}")
    # The pickers keep the range asked for (the browser leaves out seconds that are zero).
    expect(page.get_by_label("From (UTC)")).to_have_value(f"{night + timedelta(hours=1):%Y-%m-%dT%H:%M}")
    expect(page.get_by_label("Until (UTC)")).to_have_value(f"{night + timedelta(hours=4):%Y-%m-%dT%H:%M}")
    screenshot(page, "journey-auditor-5-ledger-of-the-night")

    # 4. The range exported as CSV, as evidence.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"), newline="")))
    assert [row["object_label"] for row in exported] == [f"night batch: {key}" for key in ("first", "second", "third")]
    shown = ledger.nth(1).locator("td")  # the page's row of the second event
    second = next(row for row in exported if row["object_label"] == "night batch: second")
    assert second["seq"] == shown.nth(0).inner_text()
    assert second["occurred_at"] == f"{events['second']:%Y-%m-%dT%H:%M:%S}.000000Z"
    assert second["action"] == "note" and second["actor_name"] == "batch-runner"

    # 5. The key page says how a hash is made; the auditor follows its words for that row.
    page.get_by_role("link", name="Public key and how to verify").click()
    rules = page.locator("#hash-format")
    expect(rules.get_by_role("heading", name="How each event's hash is computed")).to_be_visible()
    words = " ".join(rules.inner_text().split())
    for rule in ("the SHA-256 digest, written as 64 lowercase hexadecimal characters",
                 "the hash of the event before it (the event's own prev_hash), as its 64 characters",
                 "one newline, the byte 0x0A",
                 "the length of its text in bytes of UTF-8, in decimal, then :, the text in UTF-8, then ,",
                 "no separator between the fields, no newline at the end",
                 "holds each of these texts exactly as hashed"):
        assert rule in words, rule
    order = [item.get_attribute("data-field") for item in rules.locator("#hash-fields li").all()]
    assert order[:2] == ["seq", "occurred_at"] and len(order) == 14
    screenshot(page, "journey-auditor-6-key-page")
    close_up(rules.locator("#hash-fields"), "journey-auditor-6-hash-fields-close-up")

    def netstring(text: str) -> bytes:
        data = text.encode("utf-8")
        return str(len(data)).encode("ascii") + b":" + data + b","

    hashed = second["prev_hash"].encode("ascii") + b"\n" + b"".join(netstring(second[name]) for name in order)
    assert hashlib.sha256(hashed).hexdigest() == second["hash"]
    # The export's rows follow each other in the chain, and the row is the ledger's own.
    first_row, _, third = exported
    assert second["prev_hash"] == first_row["hash"] and third["prev_hash"] == second["hash"]
    assert AuditEvent.objects.get(seq=int(second["seq"])).hash == second["hash"]
    assert page.outside_requests == []
