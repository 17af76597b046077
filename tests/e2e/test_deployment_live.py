"""A release manager runs a deployment from the browser with a real Celery worker: starts a three-wave deployment
of the command executor's deploy script, watches the waves advance on the live page without reloading it, approves
the second wave at its manual gate and sees the deployment succeed; then starts a second one and aborts it with a
reason. Screenshots land in test-artifacts/."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from governance.models import ChangeStatus
from releases.models import Deployment, PlanWave, Promotion
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_artifact, make_change, make_user
from tests.governance.deployments.world import deploy_world  # noqa: F401 (the fixture the test runs in)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLOW = 60_000  # ms: a step runs the deploy script or probes four servers


def wave(page, name: str):
    return page.locator(f'.wave[data-wave="{name}"]')


def start_from_the_page(page, change, plan, artifact) -> str:
    page.goto(f"/deployments/start/?change={change.number}")
    page.select_option("#id_plan", str(plan.pk))
    page.select_option("#id_artifact", artifact.digest)
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"/deployments/DEP\d{7}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def test_a_release_manager_runs_a_deployment_wave_by_wave_and_aborts_another(
        page, celery_worker_process, deploy_world, release_manager):  # noqa: F811
    world = deploy_world
    PlanWave.objects.filter(plan=world.plan, name="eu-west").update(manual_gate=True)

    log_in(page, "release_manager")
    page.get_by_role("link", name="Deployments").first.click()
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
    number = start_from_the_page(page, world.change, world.plan, world.new)
    screenshot(page, "deploy-1-started")

    # The live page is never reloaded: a mark left on the window stays while the waves advance.
    page.evaluate("window.stillTheSamePage = true")
    expect(wave(page, "canary")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "paused", timeout=SLOW)
    expect(page.locator(".halt-reason")).to_contain_text("waits for a release manager's approval")
    expect(wave(page, "eu-west")).to_have_attribute("data-state", "awaiting approval")
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)  # the approval is what goes on
    screenshot(page, "deploy-2-waiting-at-the-gate")

    page.get_by_role("button", name="Approve next wave").click()
    expect(wave(page, "eu-west")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    expect(wave(page, "us-east")).to_have_attribute("data-state", "succeeded")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#deployment-live")).not_to_have_attribute("hx-trigger", "every 2s")  # polling stopped
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    expect(page.locator(".log-entry").last).to_contain_text("Smoke tests")
    screenshot(page, "deploy-3-succeeded")
    assert [server.serves() for server in world.servers] == [world.new.digest] * 4
    assert Deployment.objects.get(number=number).status == "succeeded"

    # A second build under a second change: it waits at wave 2's gate, and is aborted there.
    builder = make_user("ci-bot-2")
    newer = make_artifact(world.plan.service, "1.2.0", created_by=builder)
    Promotion.objects.create(artifact=newer, environment=world.plan.environment.__class__.objects.get(name="dev"),
                             recorded_by=builder)
    now = datetime.now(UTC)
    second_change = make_change(make_user("rob", "requester"), cis=[world.plan.service],
                                environment=world.plan.environment, planned_start=now - timedelta(minutes=5),
                                planned_end=now + timedelta(hours=1), status=ChangeStatus.APPROVED)
    second = start_from_the_page(page, second_change, world.plan, newer)
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "paused", timeout=SLOW)
    page.fill("#abort-form input[name=reason]", "The release notes name the wrong build")
    screenshot(page, "deploy-4-about-to-abort")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Abort").click()
    expect(page.locator("#deployment-live")).to_have_attribute("data-status", "aborted", timeout=SLOW)
    expect(page.locator(".deployment-state .cstatus")).to_have_text("Aborted")
    expect(wave(page, "canary")).to_have_attribute("data-state", "rolled back")
    expect(wave(page, "canary").locator('[data-kind="rollback_rollout"]')).to_have_attribute(
        "data-state", "succeeded")
    screenshot(page, "deploy-5-aborted")
    assert Deployment.objects.get(number=second).status == "aborted"
    page.get_by_role("link", name="Deployments of shop-api").click()
    expect(page.locator(f'#deployment-results tr[data-deployment="{second}"]')).to_contain_text("Aborted")
    expect(page.locator(f'#deployment-results tr[data-deployment="{number}"]')).to_contain_text("Succeeded")
    screenshot(page, "deploy-6-list")
    assert [server.serves() for server in world.servers] == [world.new.digest] * 4  # canary went back
