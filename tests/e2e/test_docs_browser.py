"""The pages people read to use Changeboard from outside, in a real browser: the API docs (ReDoc and Swagger UI),
which load nothing from another host and show every operation under its area, and the audit key page."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from playwright.sync_api import expect

from governance.roles import Role
from tests.e2e.conftest import ARTIFACTS, log_in, screenshot
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AREAS = ["CMDB", "Changes", "Calendar", "Releases", "Gate", "Audit", "Deployments", "ITSM"]


@pytest.fixture
def operation_count(transactional_db) -> int:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sum(
        1 for item in schema["paths"].values() for method in item if method in {"get", "put", "patch", "post", "delete"}
    )


@pytest.fixture
def failed(page):
    """Every answer of 400 or more the page received (a missing icon, a missing script)."""
    answers: list[str] = []
    page.on("response", lambda r: answers.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return answers


def test_redoc_shows_every_operation_by_area_and_loads_nothing_from_outside(page, failed, operation_count):
    page.goto("/api/redoc/")
    expect(page.locator("[data-section-id='tag/Changes']")).to_be_visible(timeout=30_000)
    expect(page.locator("[data-section-id^='operation/']")).to_have_count(operation_count)
    menu = page.locator("[role=menuitem] label, .menu-content label").all_inner_texts()
    for area in AREAS:
        expect(page.locator(f"[data-section-id='tag/{area}']")).to_have_count(1)
    assert not any(text.strip() == "v1" for text in menu)
    expect(page.locator("[data-section-id='tag/v1']")).to_have_count(0)
    page.wait_for_load_state("networkidle")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-redoc.png"))  # the first screen: the whole page is some 40 metres
    assert outside(page) == []
    assert failed == []
    # ReDoc's text is in the system's fonts: nothing asked Google for Montserrat or Roboto.
    heading_font = page.locator("[data-section-id='tag/Changes'] h2, [data-section-id='tag/Changes'] h1").first
    assert "Montserrat" not in heading_font.evaluate("e => getComputedStyle(e).fontFamily")


def test_swagger_ui_shows_every_operation_by_area_and_loads_nothing_from_outside(page, failed, operation_count):
    page.goto("/api/docs/")
    expect(page.locator(".opblock-tag-section")).to_have_count(len(AREAS), timeout=30_000)
    tags = [t.strip() for t in page.locator(".opblock-tag-section h3 .nostyle span").all_inner_texts()]
    assert tags == AREAS
    expect(page.locator(".opblock")).to_have_count(operation_count)
    page.wait_for_load_state("networkidle")
    screenshot(page, "api-swagger")
    assert outside(page) == []
    assert failed == []


def test_the_audit_key_page_shows_how_a_hash_is_computed(page, failed):
    make_user("anna", Role.AUDITOR, first_name="Anna", last_name="Schmidt")
    log_in(page, "anna")
    page.goto("/audit/key/")
    expect(page.locator("#hash-format h2")).to_have_text("How each event's hash is computed")
    expect(page.locator("#hash-fields li")).to_have_count(14)
    expect(page.locator("#hash-recipe")).to_contain_text("hashlib.sha256")
    expect(page.locator("#hash-example-hash")).to_have_text(re_hex64())
    page.wait_for_load_state("networkidle")
    screenshot(page, "audit-key")
    assert outside(page) == []
    assert failed == []  # the icon included


def test_the_ledger_page_offers_date_and_time_pickers(page):
    make_user("anna", Role.AUDITOR)
    log_in(page, "anna")
    page.goto("/audit/")
    since = page.locator("input[name=since]")
    expect(since).to_have_attribute("type", "datetime-local")
    since.fill("2024-03-02T09:30:15")
    page.locator("input[name=until]").fill("2024-03-02T10:00")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re_url("since=2024-03-02T09%3A30%3A15&until=2024-03-02T10%3A00"))
    expect(page.locator("input[name=since]")).to_have_value("2024-03-02T09:30:15")
    expect(page.locator("label:has(input[name=since]) small.hint")).to_have_text(
        "YYYY-MM-DD HH:MM:SS in UTC, or with an offset (+02:00)"
    )
    screenshot(page, "audit-ledger-filters")


def outside(page) -> list[str]:
    """What the page asked of other hosts. A blob: address (ReDoc's download link, its search worker) names memory
    in the page itself, not a host."""
    return [url for url in page.outside_requests if not url.startswith(("blob:", "data:"))]


def re_hex64():
    import re

    return re.compile(r"^[0-9a-f]{64}$")


def re_url(fragment: str):
    import re

    return re.compile(".*" + re.escape(fragment) + ".*")
