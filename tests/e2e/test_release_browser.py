"""Following a build in a real browser: the artifact list, one artifact's path to production, the gate log."""

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from governance.models.gate import DeploymentCheck, GateDecision
from governance.roles import Role
from releases.models import Deployment, DeploymentStatus, GatePolicy, Promotion, ScanResult, SignatureStatus, TrustedKey
from tests.e2e.conftest import log_in, screenshot
from tests.factories import at, make_artifact, make_change, make_ci, make_environment, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def release(transactional_db):
    """payments-api 4.2.0 signed, scanned and through dev and staging; the gate refused it prod once."""
    payments = make_team("payments", name="Payments")
    api = make_ci("payments-api", team=payments, criticality=1)
    chain = [make_environment(name, position, is_production=name == "prod")
             for position, name in enumerate(["dev", "staging", "prod"])]
    dev, staging, prod = chain
    GatePolicy.objects.create(environment=prod, require_signature=True, required_scans=["sast", "dependency"],
                              max_critical=0, max_high=3)
    pipeline = make_user("gh-actions", Role.SERVICE_ACCOUNT)
    rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
    key = TrustedKey.objects.create(team=payments, name="release-2024", public_key_pem="pem", key_id="f" * 64)
    make_artifact(api, "4.1.0", created_by=pipeline, created_at=at(1))
    build = make_artifact(api, "4.2.0", created_by=pipeline, source_commit="abc1234def",
                          build_url="https://ci.example/builds/4711", signature="ab" * 64, signed_by=key,
                          signature_status=SignatureStatus.VALID, created_at=at(4),
                          provenance={"builder": {"id": "https://ci.example/runner"}, "buildType": "docker",
                                      "materials": [{"uri": "git+https://git.example/payments-api", "digest": {
                                          "sha1": "abc1234def"}}]})
    Promotion.objects.create(artifact=build, environment=dev, passed_at=at(4, 11), recorded_by=pipeline)
    Promotion.objects.create(artifact=build, environment=staging, passed_at=at(5, 15), recorded_by=pipeline)
    ScanResult.objects.create(artifact=build, kind="sast", tool="semgrep", verdict="pass", medium=2, low=5,
                              report_url="https://scans.example/semgrep/1", recorded_by=pipeline, scanned_at=at(4, 10))
    ScanResult.objects.create(artifact=build, kind="dependency", tool="trivy", verdict="fail", critical=1, high=2,
                              recorded_by=pipeline, scanned_at=at(4, 10))
    change = make_change(rita, cis=[api], environment=prod, title="Ship payments-api 4.2.0")
    Deployment.objects.create(service=api, environment=staging, artifact=build, status=DeploymentStatus.SUCCEEDED,
                              change_number=change.number, check_id=uuid.uuid4(), reported_by=pipeline,
                              started_at=at(5, 14), finished_at=at(5, 15))
    for asked_at, env, decision, reasons in [
        (at(5, 14), staging, GateDecision.ALLOW, []),
        (at(6, 9), prod, GateDecision.DENY, [
            {"code": "change_not_approved", "message": f"{change.number} is Draft, not approved."},
            {"code": "scan_failed", "message": "Scans failed: trivy."},
            {"code": "scan_findings", "message": "1 critical findings; prod allows 0."}]),
    ]:
        DeploymentCheck.objects.create(service=api, environment=env, digest=build.digest, artifact=build,
                                       change=change, decision=decision, reasons=reasons, asked_by=pipeline,
                                       asked_at=asked_at, valid_until=asked_at + timedelta(minutes=5))
    return {"build": build, "change": change, "service": api}


def test_an_auditor_follows_a_build_to_the_gate_log(page, release):
    make_user("audrey", Role.AUDITOR, first_name="Audrey", last_name="Auditor")
    log_in(page, "audrey")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Releases").click()
    expect(page.get_by_role("heading", name="Artifacts")).to_be_visible()
    row = page.locator(f'tr[data-digest="{release["build"].digest}"]')
    expect(row).to_contain_text("passed staging")
    expect(row).to_contain_text("Dependency scan fail")
    screenshot(page, "release-artifact-list")

    row.get_by_role("link", name="4.2.0").click()
    expect(page.get_by_role("heading", name=re.compile("payments-api 4.2.0"))).to_be_visible()
    path = page.locator("#promotion-path tbody tr")
    expect(path).to_have_count(3)
    expect(path.nth(0)).to_contain_text("dev")
    expect(path.nth(0)).to_contain_text("passed 2024-03-04 11:00")
    expect(path.nth(1)).to_contain_text("passed 2024-03-05 15:00")
    expect(path.nth(2)).to_contain_text("next")
    expect(path.nth(2)).to_contain_text("signed builds only")
    expect(page.locator("#signature")).to_contain_text("release-2024 of Payments")
    expect(page.locator("#scans")).to_contain_text("trivy")
    expect(page.locator("#deployments")).to_contain_text(release["change"].number)
    expect(page.locator("#provenance pre")).to_contain_text('"buildType": "docker"')
    screenshot(page, "release-artifact-detail")

    nav.get_by_role("link", name="Gate log").click()
    expect(page.get_by_role("heading", name="Gate log")).to_be_visible()
    rows = page.locator("table.gate-log tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Deny")
    expect(rows.first).to_contain_text("scan_failed")
    expect(rows.first).to_contain_text("Scans failed: trivy.")
    screenshot(page, "release-gate-log")

    page.select_option("#id_decision", "allow")  # htmx swaps the results and pushes the URL
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Allow")
    expect(page).to_have_url(re.compile(r"decision=allow"))

    rows.first.get_by_role("link", name="4.2.0").click()
    expect(page.get_by_role("heading", name=re.compile("payments-api 4.2.0"))).to_be_visible()
    assert page.outside_requests == []


def test_a_release_manager_sees_the_builds_of_a_service_on_its_cmdb_page(page, release):
    make_user("rory", Role.RELEASE_MANAGER)
    log_in(page, "rory")
    page.goto(f"/cmdb/cis/{release['service'].pk}/")
    builds = page.locator("#service-artifacts")  # loaded in place by htmx
    expect(builds).to_contain_text("4.2.0")
    expect(builds).to_contain_text("4.1.0")
    screenshot(page, "release-ci-builds")
    builds.get_by_role("link", name="4.2.0").click()
    expect(page.locator("#promotion-path")).to_contain_text("staging")
