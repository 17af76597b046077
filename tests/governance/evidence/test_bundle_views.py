"""The evidence bundles page: exporters build a bundle from it, its row refreshes itself while the bundle builds,
and a ready bundle downloads from it."""

from pathlib import Path

import pytest
from django.urls import reverse

from governance.audit.ledger import audit_seal
from governance.evidence.bundle import bundle_path
from governance.models import AuditEvent, EvidenceBundle
from tests.governance.evidence.bundle_world import BundleWorld, build_bundle_world, build_here, write_bundles_under


@pytest.fixture
def evidence_dir(tmp_path, settings, monkeypatch) -> Path:
    return write_bundles_under(tmp_path / "evidence", settings, monkeypatch)


@pytest.fixture
def world(db, evidence_dir) -> BundleWorld:
    return build_bundle_world()


PAGE = "/audit/evidence/bundles/"


def test_an_auditor_builds_a_bundle_from_the_page(world, client, auditor):
    client.force_login(auditor)
    page = client.get(PAGE)
    assert page.status_code == 200 and b'id="build-bundle"' in page.content
    response = client.post(PAGE, {"start": "2026-01-01", "end": "2026-01-31", "scope": "phi", "seed": "77"})
    assert response.status_code == 302
    bundle = EvidenceBundle.objects.get()
    assert (bundle.scope, bundle.seed, bundle.status) == ("phi", 77, "queued")
    row = client.get(PAGE).content.decode()
    assert f'hx-get="{reverse("evidence:bundle_progress", args=[bundle.pk])}" hx-trigger="every 2s"' in row


def test_a_bad_period_is_a_400_with_the_field_named(world, client, auditor):
    client.force_login(auditor)
    response = client.post(PAGE, {"start": "2026-03-01", "end": "2026-01-31", "scope": "all", "seed": "1"})
    assert response.status_code == 400
    assert "end" in response.context["form"].errors
    assert not EvidenceBundle.objects.exists()


def test_a_ready_bundle_stops_refreshing_and_downloads(world, client, auditor):
    bundle = build_here(auditor, world.period)
    client.force_login(auditor)
    row = client.get(reverse("evidence:bundle_progress", args=[bundle.pk])).content.decode()
    assert "hx-trigger" not in row and "Download" in row
    response = client.get(reverse("evidence:bundle_file", args=[bundle.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == bundle_path(bundle).read_bytes()
    audit_seal()
    assert AuditEvent.objects.filter(action="export", object_id=str(bundle.pk),
                                     object_label__endswith="(download)").exists()


def test_a_requester_sees_no_bundle_page_and_downloads_nothing(world, client, auditor, requester):
    bundle = build_here(auditor, world.period)
    client.force_login(requester)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"start": "2026-01-01", "end": "2026-01-31", "scope": "all", "seed": "1"}
                       ).status_code == 403
    assert client.get(reverse("evidence:bundle_progress", args=[bundle.pk])).status_code == 403
    assert client.get(reverse("evidence:bundle_file", args=[bundle.pk])).status_code == 403
