"""An auditor opens the evidence home, builds an evidence bundle in the browser, watches its progress as a real
worker writes it, downloads the zip and the bundle's own verifier passes it."""

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from governance.evidence.verifier import verify_bundle
from governance.roles import Role
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_user
from tests.governance.evidence.bundle_world import build_bundle_world, write_bundles_under

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def evidence_dir(tmp_path, settings, monkeypatch) -> Path:
    return write_bundles_under(tmp_path / "evidence", settings, monkeypatch)


def test_an_auditor_builds_a_bundle_watches_it_progress_and_downloads_it(evidence_dir, celery_worker_process, page,
                                                                          tmp_path):
    build_bundle_world()
    make_user("avery", Role.AUDITOR)
    log_in(page, "avery")
    # The auditor lands on the evidence home: the period's controls at a glance, the bundles below.
    expect(page).to_have_url(re.compile(r"/audit/evidence/$"))
    expect(page.locator("#controls tbody tr")).to_have_count(5)
    screenshot(page, "evidence-home")
    page.get_by_role("link", name="Build a bundle").click()
    expect(page).to_have_url(re.compile(r"/audit/evidence/bundles/$"))
    today = datetime.now(UTC).date().isoformat()
    page.fill("#id_start", today)
    page.fill("#id_end", today)
    page.select_option("#id_scope", "all")
    page.fill("#id_seed", "2026")
    page.click("#build-bundle button[type=submit]")

    row = page.locator("#bundles tbody tr").first
    assert row.locator("td").nth(4).inner_text() == "2026"
    # The row shows the build's progress, refreshing itself every 2 s until the worker is done.
    expect(row.locator("progress")).to_be_visible()
    screenshot(page, "evidence-bundle-progress")
    seen = set()
    download_link = row.get_by_role("link", name="Download")
    deadline = time.monotonic() + 90
    while not download_link.count():
        assert time.monotonic() < deadline, f"the bundle was not ready in 90 s; progress seen: {sorted(seen)}"
        # all_inner_texts does not wait: the row may be swapped for its ready state at any moment.
        seen.update(int(text.rstrip("%")) for text in row.locator(".bundle-progress").all_inner_texts())
        page.wait_for_timeout(100)
    assert seen and all(0 <= value < 100 for value in seen), seen
    assert "Ready" in row.inner_text()
    screenshot(page, "evidence-bundle-ready")
    with page.expect_download() as download:
        download_link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    report = verify_bundle.verify(saved)
    assert report.ok, report.lines()
