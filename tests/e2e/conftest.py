"""A real Chromium driven by Playwright against pytest-django's live server."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Addresses that fetch nothing from any host.
INSIDE = ("data:", "blob:", "about:")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The live server runs in a thread of this process; Playwright's sync API runs an event loop here too.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Every browser test runs against a live server, so in a transactional database."""


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CHANGEBOARD_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium is required for browser tests but {CHROMIUM} is missing")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    outside: list[str] = []
    # Nothing may be fetched from outside the app (no CDN): any request that tries fails the test.
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((live_server.url, *INSIDE)) else None)
    page.outside_requests = outside
    yield page
    context.close()
    assert not outside, f"the pages asked for something outside the app: {outside}"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, username: str, password: str = "pw-for-tests") -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
