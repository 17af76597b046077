"""The demo `make run` shows, in a browser with a real Celery worker: a release manager opens the demo change, deploys
it from the change page over the demo fleet (small local processes whose build the deployment really changes),
watches canary and eu-west advance on the live page, starts a second deployment that queues behind the first and
aborts it, then approves us-east; the fleet serves the new build and the change is completed.
Screenshots land in test-artifacts/."""

import re
import subprocess
import sys
import time
import urllib.request

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from governance.devstack import free_loopback_addresses
from governance.models import ChangeRequest, ChangeStatus
from releases import demo_fleet
from releases.demo import ROLLOUT_CHANGE, ROLLOUT_LIVE
from releases.models import Deployment
from tests.e2e.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLOW = 60_000  # ms: a wave restarts its hosts one at a time and bakes up to 10 s


@pytest.fixture
def fleet(tmp_path):
    """The demo fleet as `make run` starts it: five hosts on loopback serving the build running in staging."""
    hosts = free_loopback_addresses(5)
    process = subprocess.Popen([sys.executable, "-m", "releases.demo_fleet", "serve", str(tmp_path),
                                ROLLOUT_LIVE.digest, *hosts])
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://{hosts[-1]}/health", timeout=1).read()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the demo fleet did not start"
            time.sleep(0.1)
    yield hosts, tmp_path
    process.terminate()
    process.wait(timeout=10)


def wave(page, name: str):
    return page.locator(f'.wave[data-wave="{name}"]')


def deploy_from_the_change_page(page, number: str) -> str:
    page.goto(f"/changes/{number}/")
    panel = page.locator("#change-deployments")
    panel.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"/deployments/DEP\d{7}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def test_a_release_manager_deploys_the_demo_change_and_aborts_a_second_deployment(page, celery_worker_process,
                                                                                   fleet):
    hosts, state = fleet
    call_command("seed_demo", password="pw-for-tests", demo_fleet=",".join(hosts), demo_fleet_state=str(state))
    change = ChangeRequest.objects.get(title=ROLLOUT_CHANGE.title, status=ChangeStatus.APPROVED)
    new = ROLLOUT_CHANGE.build.digest

    log_in(page, "release_manager")
    page.goto(f"/changes/{change.number}/")
    panel = page.locator("#change-deployments")
    expect(panel).to_contain_text(f"Nothing deployed under {change.number} yet")
    # The change has one plan and one approved build: both are picked already.
    expect(panel.locator("select[name=plan] option:checked")).to_contain_text("notifications")
    expect(panel.locator("select[name=artifact] option:checked")).to_have_text("notifications 3.2.0")
    screenshot(page, "demo-1-change-page")

    first = deploy_from_the_change_page(page, change.number)
    expect(wave(page, "canary")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(wave(page, "eu-west")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "paused", timeout=SLOW)
    expect(wave(page, "us-east")).to_have_attribute("data-state", "awaiting approval")
    screenshot(page, "demo-2-waiting-for-us-east")
    assert [demo_fleet.serving(state, host) for host in hosts] == [new] * 3 + [ROLLOUT_LIVE.digest] * 2

    # A second deployment of the change waits behind the first, which holds notifications in staging; it is aborted.
    second = deploy_from_the_change_page(page, change.number)
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "queued")
    page.fill("#abort-form input[name=reason]", "Started twice by mistake")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Abort").click()
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "aborted", timeout=SLOW)
    assert Deployment.objects.get(number=second).halt_reason == "Aborted by release_manager: Started twice by mistake"

    page.goto(f"/deployments/{first}/")
    page.get_by_role("button", name="Approve next wave").click()
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    screenshot(page, "demo-3-succeeded")
    assert [demo_fleet.serving(state, host) for host in hosts] == [new] * 5

    page.goto(f"/changes/{change.number}/")
    panel = page.locator("#change-deployments")
    expect(panel.locator(f'tr[data-deployment="{first}"]')).to_contain_text("Succeeded")
    expect(panel.locator(f'tr[data-deployment="{second}"]')).to_contain_text("Aborted")
    expect(page.locator("#change-status")).to_contain_text("Completed")
    expect(panel.get_by_role("button", name="Deploy")).to_have_count(0)  # carried out: nothing more to start
    screenshot(page, "demo-4-change-completed")
