"""The release pages through Django's test client: artifacts, their promotion path, and the gate log."""

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.models import AuditCapture
from governance.models.gate import DeploymentCheck, GateDecision
from releases.models import (
    Deployment,
    DeploymentStatus,
    GatePolicy,
    Promotion,
    ScanResult,
    SignatureStatus,
    TrustedKey,
)
from tests.factories import at, make_artifact, make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db

ARTIFACTS = reverse("releases:artifact_list")
GATE_LOG = reverse("gate:gate_log")


def detail_url(artifact) -> str:
    return reverse("releases:artifact_detail", args=[artifact.digest])


def path_rows(response) -> list[tuple[str, str]]:
    """(environment, passed | next | pending) of each row of the promotion path table, in page order."""
    assert response.status_code == 200
    table = response.content.decode().split('class="grid compact path-table"', 1)[1].split("</table>", 1)[0]
    return [(env, state) for state, env in re.findall(r'<tr class="(\w+)" data-environment="([^"]+)">', table)]


def listed_versions(response) -> list[str]:
    assert response.status_code == 200
    results = response.content.decode().split('id="artifact-results"', 1)[1]
    return re.findall(r'<td class="nowrap"><a href="/releases/artifacts/sha256:[0-9a-f]+/">([^<]+)</a></td>', results)


def logged_checks(response) -> list[str]:
    """The ids of the checks in the gate log's results table, in page order."""
    assert response.status_code == 200
    return re.findall(r'<tr data-check="([^"]+)"', response.content.decode())


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def _grown_within_budget(client, url, grow, assert_max_queries):
    """The page with 33 rows, read in no more queries than with 3 (`grow(start, count)` adds rows)."""
    grow(0, 3)
    budget = _queries(client, url)
    grow(3, 30)
    with assert_max_queries(budget):
        return client.get(url)


@pytest.fixture
def reader(client, auditor):
    client.force_login(auditor)
    return client


@pytest.fixture
def payments(db):
    return make_team("payments", name="Payments")


@pytest.fixture
def chain(db):
    """dev -> staging -> prod, made out of order so that only `position` can put them right."""
    prod = make_environment("prod", 2, is_production=True)
    dev = make_environment("dev", 0)
    staging = make_environment("staging", 1)
    GatePolicy.objects.create(environment=prod, require_signature=True, required_scans=["sast", "dependency"],
                              max_critical=0, max_high=3)
    return {"dev": dev, "staging": staging, "prod": prod}


@pytest.fixture
def service(payments):
    return make_ci("payments-api", team=payments)


@pytest.fixture
def artifact(service, chain, pipeline, payments):
    """4.2.0 of payments-api: signed, passed dev and staging, two scans, deployed to staging under a change."""
    key = TrustedKey.objects.create(team=payments, name="release-2024", public_key_pem="-----BEGIN PUBLIC KEY-----",
                                    key_id="f" * 64)
    build = make_artifact(service, "4.2.0", created_by=pipeline, source_commit="abc1234def",
                          build_url="https://ci.example/builds/4711", signature="ab" * 64, signed_by=key,
                          signature_status=SignatureStatus.VALID, created_at=at(1),
                          provenance={"builder": {"id": "https://ci.example/runner"}, "buildType": "docker"})
    Promotion.objects.create(artifact=build, environment=chain["dev"], passed_at=at(2, 9), recorded_by=pipeline)
    Promotion.objects.create(artifact=build, environment=chain["staging"], passed_at=at(3, 14), recorded_by=pipeline)
    ScanResult.objects.create(artifact=build, kind="sast", tool="semgrep", verdict="pass", medium=2, low=5,
                              report_url="https://scans.example/semgrep/1", recorded_by=pipeline, scanned_at=at(1, 11))
    ScanResult.objects.create(artifact=build, kind="dependency", tool="trivy", verdict="fail", critical=1, high=2,
                              recorded_by=pipeline, scanned_at=at(1, 12))
    Deployment.objects.create(service=service, environment=chain["staging"], artifact=build,
                              status=DeploymentStatus.SUCCEEDED, change_number="CHG0000042", check_id=uuid.uuid4(),
                              reported_by=pipeline, started_at=at(3, 13), finished_at=at(3, 14))
    return build


def check(service, environment, asked_by, *, decision=GateDecision.DENY, reasons=(), artifact=None, change=None,
          asked_at=None, digest="") -> DeploymentCheck:
    asked_at = asked_at or at(5)
    return DeploymentCheck.objects.create(
        service=service, environment=environment, asked_by=asked_by, decision=decision, reasons=list(reasons),
        artifact=artifact, change=change, digest=digest or (artifact.digest if artifact else "sha256:" + "0" * 64),
        asked_at=asked_at, valid_until=asked_at + timedelta(minutes=5))


# Who may see the pages


def _urls(artifact, service) -> list[str]:
    return [ARTIFACTS, detail_url(artifact), GATE_LOG, reverse("releases:service_artifacts", args=[service.pk])]


def test_anonymous_visitors_are_sent_to_log_in(client, artifact, service):
    for url in _urls(artifact, service):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_people_without_a_role_are_refused_every_release_page(client, outsider, artifact, service):
    client.force_login(outsider)
    for url in _urls(artifact, service):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize("persona", ["requester", "cab_member", "release_manager", "auditor", "admin_user"])
def test_every_role_reads_the_release_pages(client, request, persona, artifact, service):
    client.force_login(request.getfixturevalue(persona))
    for url in _urls(artifact, service):
        assert client.get(url).status_code == 200, url


def test_the_gate_log_needs_its_own_permission(client, artifact, service):
    reader_of_builds = make_user("builds-only")
    reader_of_builds.user_permissions.add(Permission.objects.get(codename="view_artifact"))
    client.force_login(reader_of_builds)
    assert client.get(detail_url(artifact)).status_code == 200
    assert client.get(GATE_LOG).status_code == 403
    html = client.get(ARTIFACTS).content.decode()
    assert ">Releases</a>" in html and ">Gate log</a>" not in html


def test_the_navigation_links_follow_the_permissions(client, auditor, outsider):
    client.force_login(auditor)
    html = client.get(reverse("token_list")).content.decode()
    assert f'href="{ARTIFACTS}"' in html and f'href="{GATE_LOG}"' in html
    client.force_login(outsider)
    html = client.get(reverse("token_list")).content.decode()
    assert f'href="{ARTIFACTS}"' not in html and f'href="{GATE_LOG}"' not in html


# The artifact page


def test_the_promotion_path_shows_every_environment_in_chain_order(reader, artifact):
    response = reader.get(detail_url(artifact))
    assert path_rows(response) == [("dev", "passed"), ("staging", "passed"), ("prod", "next")]
    html = response.content.decode()
    assert "2024-03-02 09:00" in html and "2024-03-03 14:00" in html


def test_a_build_never_promoted_has_the_first_environment_next_and_the_rest_not_yet(reader, service, chain, pipeline):
    fresh = make_artifact(service, "4.3.0", created_by=pipeline)
    assert path_rows(reader.get(detail_url(fresh))) == [("dev", "next"), ("staging", "pending"), ("prod", "pending")]


def test_the_gate_policy_of_each_environment_is_shown_beside_the_path(reader, artifact):
    html = reader.get(detail_url(artifact)).content.decode()
    prod = html.split('data-environment="prod"', 1)[1].split("</tr>", 1)[0]
    assert "signed builds only" in prod
    assert "passed SAST, Dependency scan" in prod
    assert "≤ 0 critical" in prod and "≤ 3 high" in prod
    assert "(default policy)" not in prod
    staging = html.split('data-environment="staging"', 1)[1].split("</tr>", 1)[0]
    assert "signature optional" in staging and "(default policy)" in staging


def test_the_artifact_page_shows_signature_build_scans_deployments_and_provenance(reader, artifact):
    html = reader.get(detail_url(artifact)).content.decode()
    signature = html.split('id="signature"', 1)[1].split("</section>", 1)[0]
    assert "Valid signature from a trusted key" in signature
    assert "release-2024" in signature and "Payments" in signature
    assert f'title="{"ab" * 64}"' in signature and "abababababababababababab…" in signature
    build = html.split('id="build"', 1)[1].split("</section>", 1)[0]
    assert artifact.digest in build and "abc1234def" in build
    assert 'href="https://ci.example/builds/4711"' in build
    scans = html.split('id="scans"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", scans.split("<tbody>", 1)[1], re.S)
    assert len(rows) == 2
    trivy = next(row for row in rows if "trivy" in row)
    assert "Dependency scan" in trivy and "verdict-fail" in trivy
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', trivy) == ["1", "2", "0", "0"]
    assert 'href="https://scans.example/semgrep/1"' in scans
    deployments = html.split('id="deployments"', 1)[1].split("</section>", 1)[0]
    number = Deployment.objects.get().number
    assert number.startswith("DEP") and number in deployments
    assert "staging" in deployments and "Succeeded" in deployments
    assert 'href="/changes/CHG0000042/"' in deployments
    provenance = html.split('id="provenance"', 1)[1].split("</section>", 1)[0]
    assert '&quot;builder&quot;: {\n    &quot;id&quot;: &quot;https://ci.example/runner&quot;' in provenance


def test_an_unsigned_build_without_scans_says_so(reader, service, chain, pipeline):
    bare = make_artifact(service, "0.1.0", created_by=pipeline)
    html = reader.get(detail_url(bare)).content.decode()
    assert "sig-unsigned" in html and "no trusted key" in html
    assert "No scan recorded for this build." in html
    assert "This build has not been deployed." in html
    assert "No provenance attestation was given." in html


def test_an_unknown_digest_is_not_found(reader, chain):
    assert reader.get(f"/releases/artifacts/sha256:{'9' * 64}/").status_code == 404


def test_the_artifact_page_keeps_a_fixed_query_count(reader, artifact, service, chain, pipeline,
                                                     django_assert_max_num_queries):
    budget = _queries(reader, detail_url(artifact))
    for i in range(10):
        make_environment(f"qa-{i}", 10 + i)
        Deployment.objects.create(service=service, environment=chain["dev"], artifact=artifact,
                                  status=DeploymentStatus.FAILED, check_id=uuid.uuid4(), reported_by=pipeline)
        ScanResult.objects.create(artifact=artifact, kind="dast", tool=f"zap-{i}", verdict="warn",
                                  recorded_by=pipeline)
    with django_assert_max_num_queries(budget):
        assert reader.get(detail_url(artifact)).status_code == 200


# The artifact list


def test_the_list_shows_each_build_with_digest_signature_promotion_and_scans(reader, artifact):
    html = reader.get(ARTIFACTS).content.decode()
    row = html.split(f'data-digest="{artifact.digest}"', 1)[1].split("</tr>", 1)[0]
    assert f'<code class="digest" title="{artifact.digest}">{artifact.digest[:19]}…</code>' in row
    assert "sig-valid" in row
    assert "passed staging" in row
    assert re.findall(r'<li class="step (\w+)"', row) == ["passed", "passed", "next"]
    assert "SAST pass" in row and "Dependency scan fail" in row
    assert "2024-03-01 10:00" in row


def test_the_list_is_newest_first_and_searches_service_and_version(reader, artifact, payments, pipeline):
    search = make_ci("search-api", team=payments)
    make_artifact(search, "1.0.0", created_by=pipeline, created_at=at(10))
    make_artifact(search, "4.2.1", created_by=pipeline, created_at=at(11))
    assert listed_versions(reader.get(ARTIFACTS)) == ["4.2.1", "1.0.0", "4.2.0"]
    assert listed_versions(reader.get(ARTIFACTS, {"q": "SEARCH"})) == ["4.2.1", "1.0.0"]
    assert listed_versions(reader.get(ARTIFACTS, {"q": "4.2"})) == ["4.2.1", "4.2.0"]
    assert listed_versions(reader.get(ARTIFACTS, {"signature_status": "valid"})) == ["4.2.0"]
    assert listed_versions(reader.get(ARTIFACTS, {"q": "nothing-like-it"})) == []


def test_the_list_is_paginated_keeping_the_search(reader, service, chain, pipeline):
    for i in range(55):
        make_artifact(service, f"1.0.{i}", created_by=pipeline, created_at=at(1) + timedelta(minutes=i))
    first = reader.get(ARTIFACTS, {"q": "1.0"})
    assert len(listed_versions(first)) == 50
    assert "?q=1.0&amp;page=2" in first.content.decode()
    assert listed_versions(reader.get(ARTIFACTS, {"q": "1.0", "page": 2})) == [f"1.0.{i}" for i in range(4, -1, -1)]


@pytest.mark.parametrize("query", ["", "?q=svc&signature_status=valid"])
def test_the_list_keeps_a_fixed_query_count_as_rows_grow(reader, chain, payments, pipeline, query,
                                                         django_assert_max_num_queries):
    key = TrustedKey.objects.create(team=payments, name="k", public_key_pem="pem", key_id="e" * 64)
    services = [make_ci(f"svc-{n}", team=make_team()) for n in range(3)]

    def grow(start, count):
        for i in range(start, start + count):
            build = make_artifact(services[i % 3], f"2.0.{i}", created_by=pipeline, signed_by=key,
                                  signature_status=SignatureStatus.VALID)
            for name in ("dev", "staging")[: 1 + i % 2]:
                Promotion.objects.create(artifact=build, environment=chain[name], recorded_by=pipeline)
            for kind in ("sast", "dependency"):
                ScanResult.objects.create(artifact=build, kind=kind, tool="t", verdict="pass", recorded_by=pipeline)

    response = _grown_within_budget(reader, f"{ARTIFACTS}{query}", grow, django_assert_max_num_queries)
    assert len(listed_versions(response)) == 33


# The builds panel of a CI's page


def test_a_ci_page_loads_the_latest_builds_of_that_service(reader, artifact, service, payments):
    html = reader.get(reverse("cmdb:ci_detail", args=[service.pk])).content.decode()
    panel = reverse("releases:service_artifacts", args=[service.pk])
    assert f'hx-get="{panel}"' in html
    fragment = reader.get(panel).content.decode()
    assert f'href="{detail_url(artifact)}"' in fragment and "4.2.0" in fragment
    assert reader.get(reverse("releases:service_artifacts", args=[make_ci("db", team=payments).pk])
                      ).content.decode().strip() == ""


def test_the_builds_panel_shows_the_latest_ten_and_links_to_all_in_a_fixed_query_count(
        reader, service, chain, pipeline, django_assert_max_num_queries):
    panel = reverse("releases:service_artifacts", args=[service.pk])

    def grow(start, count):
        for i in range(start, start + count):
            build = make_artifact(service, f"5.0.{i}", created_by=pipeline, created_at=at(1) + timedelta(minutes=i))
            Promotion.objects.create(artifact=build, environment=chain["dev"], recorded_by=pipeline)
            ScanResult.objects.create(artifact=build, kind="sast", tool="t", verdict="pass", recorded_by=pipeline)

    fragment = _grown_within_budget(reader, panel, grow, django_assert_max_num_queries).content.decode()
    shown = re.findall(r'<a href="/releases/artifacts/sha256:[0-9a-f]+/">([^<]+)</a>', fragment)
    assert shown == [f"5.0.{i}" for i in range(32, 22, -1)]  # the newest ten of 33
    assert f'?q={service.name}">All builds of {service.name}</a>' in fragment


# The gate log


@pytest.fixture
def checks(service, chain, artifact, pipeline, requester):
    """Three answers about payments-api and one about search-api, asked at different times."""
    change = make_change(requester, cis=[service], environment=chain["prod"])
    search = make_ci("search-api", team=make_team())
    return {
        "denied": check(service, chain["prod"], pipeline, artifact=artifact, change=change, asked_at=at(5, 10),
                        reasons=[{"code": "signature_required", "message": "prod takes signed builds only."},
                                 {"code": "scan_failed", "message": "Scans failed: trivy."}]),
        "allowed": check(service, chain["staging"], pipeline, artifact=artifact, change=change,
                         decision=GateDecision.ALLOW, asked_at=at(5, 11)),
        "unknown": check(service, chain["dev"], pipeline, digest="sha256:" + "1" * 64, asked_at=at(5, 9), reasons=[
            {"code": "change_missing", "message": "No approved change covers payments-api in dev now."},
            {"code": "artifact_unknown", "message": "No artifact is registered."},
        ]),
        "search": check(search, chain["prod"], pipeline, asked_at=at(5, 12),
                        reasons=[{"code": "change_missing", "message": "No approved change covers search-api."}]),
    }


def test_the_gate_log_lists_checks_newest_first_with_every_reason(reader, checks, artifact):
    response = reader.get(GATE_LOG)
    ids = {str(c.pk): name for name, c in checks.items()}
    assert [ids[pk] for pk in logged_checks(response)] == ["search", "allowed", "denied", "unknown"]
    html = response.content.decode()
    denied = html.split(f'data-check="{checks["denied"].pk}"', 1)[1].split("</tr>", 1)[0]
    assert "verdict-deny" in denied
    assert "<code>signature_required</code> prod takes signed builds only." in denied
    assert "<code>scan_failed</code> Scans failed: trivy." in denied
    number = checks["denied"].change.number
    assert f'href="{reverse("governance:change_detail", args=[number])}">{number}</a>' in denied
    assert f'href="{reverse("cmdb:ci_detail", args=[checks["denied"].service_id])}">payments-api</a>' in denied
    assert f'href="{detail_url(artifact)}"' in denied
    assert ">pipeline<" in denied
    allowed = html.split(f'data-check="{checks["allowed"].pk}"', 1)[1].split("</tr>", 1)[0]
    assert "verdict-allow" in allowed
    unknown = html.split(f'data-check="{checks["unknown"].pk}"', 1)[1].split("</tr>", 1)[0]
    assert "none named" in unknown and "unknown" in unknown and "/releases/artifacts/" not in unknown
    assert "<code>change_missing</code>" in unknown and "<code>artifact_unknown</code>" in unknown


@pytest.mark.parametrize(("filters", "expected"), [
    ({"decision": "allow"}, ["allowed"]),
    ({"decision": "deny"}, ["search", "denied", "unknown"]),
    ({"environment": "prod"}, ["search", "denied"]),
    ({"q": "PAYMENTS"}, ["allowed", "denied", "unknown"]),
    ({"q": "payments", "environment": "prod", "decision": "deny"}, ["denied"]),
    ({"environment": "staging", "decision": "deny"}, []),
])
def test_the_gate_log_filters_by_decision_environment_and_service(reader, checks, filters, expected):
    ids = {str(c.pk): name for name, c in checks.items()}
    assert [ids[pk] for pk in logged_checks(reader.get(GATE_LOG, filters))] == expected


def test_a_bad_gate_log_filter_is_shown_not_a_server_error(reader, checks):
    response = reader.get(GATE_LOG, {"environment": "no-such-env", "decision": "maybe"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


@pytest.mark.parametrize("query", ["", "?q=svc&decision=deny&environment=prod"])
def test_the_gate_log_keeps_a_fixed_query_count_as_rows_grow(reader, chain, pipeline, requester, query,
                                                             django_assert_max_num_queries):
    services = [make_ci(f"svc-{n}", team=make_team()) for n in range(3)]

    def grow(start, count):
        for i in range(start, start + count):
            service = services[i % 3]
            build = make_artifact(service, f"3.0.{i}", created_by=pipeline)
            change = make_change(requester, cis=[service], environment=chain["prod"])
            check(service, chain["prod"], make_user(), artifact=build, change=change,
                  asked_at=at(6) + timedelta(minutes=i),
                  reasons=[{"code": "outside_window", "message": f"Now is outside the window of {change.number}."}])

    response = _grown_within_budget(reader, f"{GATE_LOG}{query}", grow, django_assert_max_num_queries)
    assert len(logged_checks(response)) == 33


# Ending by hand a deployment whose end never came

@pytest.fixture
def stuck(artifact, chain, service, pipeline):
    """A deployment to prod its pipeline never reported ended: it holds prod for payments-api."""
    return Deployment.objects.create(service=service, environment=chain["prod"], artifact=artifact,
                                     change_number="CHG0000043", check_id=uuid.uuid4(), reported_by=pipeline)


def abandon(client, deployment, reason="The job was cancelled; nothing was rolled out."):
    return client.post(reverse("gate:deployment_abandon", args=[deployment.number]), {"reason": reason},
                       follow=True)


def test_a_release_manager_ends_a_stuck_deployment_and_the_ledger_keeps_why(client, release_manager, stuck):
    client.force_login(release_manager)
    page = client.get(detail_url(stuck.artifact)).content.decode()
    assert page.count("End by hand") == 1  # only the deployment still running, not the finished one
    response = abandon(client, stuck)
    assert f"{stuck.number} is ended: payments-api may be deployed to prod again." in response.content.decode()
    stuck.refresh_from_db()
    assert stuck.status == DeploymentStatus.ABANDONED and stuck.finished_at is not None
    [event] = AuditCapture.objects.filter(action="deployment_abandoned")
    assert (event.object_id, event.actor_name) == (str(stuck.pk), "release_manager")
    assert event.context["reason"] == "The job was cancelled; nothing was rolled out."
    assert "Ended by hand" in client.get(detail_url(stuck.artifact)).content.decode()


def test_the_artifact_page_links_to_the_gate_log_the_change_and_the_hand_end_it_offers(client, release_manager,
                                                                                        stuck):
    """The release page names none of these addresses: the gate and changes offer them (governance.core.offers)."""
    client.force_login(release_manager)
    page = client.get(detail_url(stuck.artifact)).content.decode()
    assert f'href="{GATE_LOG}?q=payments-api"' in page
    assert f'href="{reverse("governance:change_detail", args=["CHG0000043"])}">CHG0000043</a>' in page
    assert f'action="{reverse("gate:deployment_abandon", args=[stuck.number])}"' in page


def test_only_a_release_manager_ends_a_deployment_by_hand(client, requester, auditor, stuck):
    for person in (requester, auditor):
        client.force_login(person)
        assert "End by hand" not in client.get(detail_url(stuck.artifact)).content.decode()
        assert abandon(client, stuck).status_code == 403
    stuck.refresh_from_db()
    assert stuck.status == DeploymentStatus.STARTED
    assert not AuditCapture.objects.filter(action="deployment_abandoned").exists()


def test_ending_by_hand_needs_a_reason_and_a_deployment_still_running(client, release_manager, stuck, artifact):
    client.force_login(release_manager)
    assert "Say why the deployment is ended by hand." in abandon(client, stuck, reason="  ").content.decode()
    stuck.refresh_from_db()
    assert stuck.status == DeploymentStatus.STARTED
    finished = Deployment.objects.get(status=DeploymentStatus.SUCCEEDED)
    assert f"{finished.number} already ended succeeded." in abandon(client, finished).content.decode()
    finished.refresh_from_db()
    assert finished.status == DeploymentStatus.SUCCEEDED
    assert not AuditCapture.objects.filter(action="deployment_abandoned").exists()


def test_ending_by_hand_is_a_post_with_the_forms_csrf_token(release_manager, stuck):
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(release_manager)
    url = reverse("gate:deployment_abandon", args=[stuck.number])
    assert guarded.get(url).status_code == 405
    assert guarded.post(url, {"reason": "forged"}).status_code == 403
    stuck.refresh_from_db()
    assert stuck.status == DeploymentStatus.STARTED
