"""A release manager makes a deployment plan in the browser: from the deployments list to the plans, a new plan for a
service and environment, the executor's help following the kind picked, two waves (the second added in place), a
secret in the settings refused beside them, then a third wave added to the saved plan; the plan reads back with its
three waves in order. Screenshots land in test-artifacts/."""

import json
import re

import pytest
from playwright.sync_api import expect

from releases.models import DeploymentPlan
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SETTINGS = {"forward": ["/opt/deploy/rollout.sh", "{targets}"], "backward": ["/opt/deploy/undo.sh", "{targets}"]}


def fill_wave(page, index: int, name: str, targets: str, bake: str = "0") -> None:
    page.fill(f"#id_waves-{index}-name", name)
    page.fill(f"#id_waves-{index}-targets", targets)
    page.fill(f"#id_waves-{index}-bake_seconds", bake)


def test_a_release_manager_creates_a_plan_with_two_waves_then_adds_a_third(page):
    make_user("rm", "release_manager")
    make_environment("dev", 0)
    make_environment("staging", 1)
    make_ci("shop-api", team=make_team("shop"))

    log_in(page, "rm")
    page.get_by_role("link", name="Deployments").first.click()
    page.get_by_role("link", name="Deployment plans").click()
    expect(page.get_by_role("heading", name="Deployment plans")).to_be_visible()
    expect(page.locator("#plan-results")).to_contain_text("No plan matches")
    page.get_by_role("link", name="New plan").click()

    page.select_option("#id_service", label="shop-api")
    page.select_option("#id_environment", label="staging")
    # The help beside the settings follows the kind picked, without a reload.
    page.select_option("#id_executor", "webhook")
    expect(page.locator("#executor-help")).to_have_attribute("data-kind", "webhook")
    expect(page.locator("#executor-help")).to_contain_text("token_env")
    page.select_option("#id_executor", "command")
    expect(page.locator("#executor-help")).to_have_attribute("data-kind", "command")
    page.fill("#id_executor_settings", json.dumps(SETTINGS, indent=2))

    fill_wave(page, 0, "canary", "web-1", "60")
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_role("button", name="Add a wave").click()
    expect(page.locator("#id_waves-1-name")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True  # added in place
    expect(page.locator("#id_waves-0-name")).to_have_value("canary")  # what was typed stays
    expect(page.locator("#id_executor_settings")).to_have_value(re.compile("rollout.sh"))
    fill_wave(page, 1, "europe", "web-2\nweb-3", "300")
    page.check("#id_waves-1-manual_gate")
    screenshot(page, "plan-1-new-with-two-waves")
    page.get_by_role("button", name="Create the plan").click()

    expect(page).to_have_url(re.compile(r"/deployments/plans/\d+/$"))
    expect(page.locator(".flash")).to_contain_text("Plan for shop-api in staging saved.")
    plan = DeploymentPlan.objects.get()
    assert list(plan.waves.values_list("name", "targets", "bake_seconds", "manual_gate")) == [
        ("canary", ["web-1"], 60, False), ("europe", ["web-2", "web-3"], 300, True)]

    # A token written into the settings is refused beside them, and nothing is saved.
    page.fill("#id_executor_settings", json.dumps({**SETTINGS, "api_token": "s3cr3t"}))
    page.get_by_role("button", name="Save the plan").click()
    expect(page.locator('[data-field="executor_settings"]')).to_contain_text("api_token looks like a secret")
    screenshot(page, "plan-2-a-secret-refused")
    assert "api_token" not in DeploymentPlan.objects.get().executor_settings
    page.fill("#id_executor_settings", json.dumps(SETTINGS))

    page.get_by_role("button", name="Add a wave").click()
    fill_wave(page, 2, "americas", "web-4, web-5")
    page.get_by_role("button", name="Save the plan").click()
    expect(page.locator(".flash")).to_contain_text("saved")
    expect(page.locator("#id_waves-2-name")).to_have_value("americas")
    assert list(plan.waves.order_by("position").values_list("name", flat=True)) == ["canary", "europe", "americas"]
    screenshot(page, "plan-3-saved-with-three-waves")

    page.get_by_role("link", name="Plans").click()
    row = page.locator(f'tr[data-plan="{plan.pk}"]')
    expect(row).to_contain_text("canary → europe (gate) → americas")
    screenshot(page, "plan-4-list")
