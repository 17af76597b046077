"""One sampled change's evidence: the page shows the request, its risk, approvals with their times and roles, the
gate's checks, what was deployed (steps included), its tests and its ledger events, for readers of evidence only; the
same page is a PDF rendered with nothing fetched from outside, and neither costs more queries for a longer history."""

import re
import zlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.audit.ledger import audit_seal
from governance.evidence.samples import StaticOnly, change_evidence_pdf
from governance.models import AuditEvent, DeploymentCheck
from releases.models import Deployment
from tests.governance.evidence.samples_world import SampleWorld


def _names(pdf: bytes, text: str) -> bool:
    """Whether the PDF writes `text` as a string (its title, its bookmarks), literal or UTF-16 hex, in the file or in
    one of its compressed streams (the page text itself is glyph ids, which only a PDF library reads back)."""
    streams = [pdf]
    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            streams.append(zlib.decompress(stream.group(1)))
        except zlib.error:
            continue
    forms = (f"({text}".encode(), text.encode("utf-16-be").hex().encode())
    return any(form in stream for stream in streams for form in forms)


@pytest.fixture
def world(db):
    return SampleWorld()


@pytest.fixture
def change(world):
    return world.evidenced_change()


def _page(client, user, change):
    client.force_login(user)
    return client.get(reverse("evidence:change_evidence", args=[change.number]))


def test_the_page_holds_everything_the_auditor_tests(world, change, auditor, client):
    response = _page(client, auditor, change)
    assert response.status_code == 200
    page = response.content.decode()
    change.refresh_from_db()
    assert change.number in page and "Rotate the payments signing key" in page and "Yearly key rotation." in page
    assert change.get_risk_level_display() in page
    for factor in change.risk_factors:
        assert factor["detail"] in page
    assert "payments-api" in page and "SOX" in page
    approval = change.approvals.get()
    assert approval.created_at.strftime("%Y-%m-%d %H:%M:%S") in page and "Carl Cab (carl)" in page
    assert "cab_member" in page and "Looks safe." in page
    for check in DeploymentCheck.objects.filter(change=change):
        assert str(check.id) in page
    assert "not_approved" in page  # the denied check's reason
    for deployment in Deployment.objects.filter(change_number=change.number):
        assert deployment.number in page and deployment.artifact.digest in page
    assert "Smoke tests" in page and "canary" in page  # the run deployment's steps
    assert "Staging run 812: 214 tests green" in page and "semgrep" in page
    # The ledger: the change's submission and carl's approval, by who did them.
    assert "governance.approval" in page and "Approved" in page
    assert 'class="no-print"' in page and "evidence-print.css" in page


def test_the_pdf_is_a_pdf_of_that_change_fetched_from_nowhere_else(world, change, auditor, client):
    client.force_login(auditor)
    response = client.get(reverse("evidence:change_evidence_pdf", args=[change.number]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="{change.number}-evidence.pdf"' in response["Content-Disposition"]
    pdf = response.content
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert _names(pdf, change.number)
    audit_seal()
    assert AuditEvent.objects.filter(action="export", object_label=f"{change.number} evidence (PDF)",
                                     actor_name="auditor").exists()


def test_the_pdf_is_the_same_bytes_for_the_same_evidence(change):
    assert change_evidence_pdf(change.number) == change_evidence_pdf(change.number)


def test_the_pdf_fetcher_serves_the_apps_static_files_and_refuses_anything_else():
    fetcher = StaticOnly()
    css = fetcher.fetch("https://changeboard.invalid/static/changeboard/evidence-print.css")
    assert b"@media print" in css.read()
    for url in ("https://cdn.example.com/static/changeboard/evidence-print.css", "file:///etc/passwd",
                "https://changeboard.invalid/static/../../etc/passwd", "https://changeboard.invalid/admin/",
                "http://169.254.169.254/latest/meta-data/", "https://changeboard.invalid/static/nothing.css"):
        with pytest.raises(ValueError):
            fetcher.fetch(url)


@pytest.mark.parametrize(("persona", "status"), [
    ("auditor", 200), ("admin_user", 200), ("cab_member", 403), ("requester", 403), ("release_manager", 403),
    ("outsider", 403),
])
def test_the_evidence_and_its_pdf_are_for_readers_of_evidence(change, client, request, persona, status):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("evidence:change_evidence", args=[change.number])).status_code == status
    assert client.get(reverse("evidence:change_evidence_pdf", args=[change.number])).status_code == status


def test_anonymous_visitors_are_sent_to_log_in(change, client):
    response = client.get(reverse("evidence:change_evidence_pdf", args=[change.number]))
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize("number", ["CHG9999999", "chg0000001", "CHG", "CHG00000001234", "DEP0000001", "CHG1'--"])
def test_a_change_that_is_not_there_is_a_404(world, auditor, client, number):
    client.force_login(auditor)
    assert client.get(f"/audit/evidence/changes/{number}/").status_code == 404
    assert client.get(f"/audit/evidence/changes/{number}/pdf/").status_code == 404


def test_a_nul_in_the_number_is_refused_not_a_500(world, auditor, client):
    client.force_login(auditor)
    assert client.get("/audit/evidence/changes/CHG1%00/").status_code in (400, 404)


def test_a_longer_history_costs_no_more_queries(world, auditor, client, django_assert_max_num_queries):
    short = world.evidenced_change()
    long = world.evidenced_change(approvals=6, edits=12, runs=3)
    client.force_login(auditor)
    url = "evidence:change_evidence"
    counts = []
    for change in (short, long):
        audit_seal()  # what the login and the world left to seal is not the page's cost
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse(url, args=[change.number])).status_code == 200
        counts.append([q["sql"][:90] for q in queries.captured_queries])
    assert len(counts[0]) == len(counts[1]), "\n".join(counts[1])
    counts = [len(c) for c in counts]
    audit_seal()
    with django_assert_max_num_queries(counts[0]):
        assert client.get(reverse(url, args=[long.number])).status_code == 200
