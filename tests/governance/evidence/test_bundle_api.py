"""The bundles API: /api/v1/audit/bundles/ starts a bundle (those who may export the ledger), lists and shows them
with their progress, and streams a ready one's zip to evidence readers."""

from pathlib import Path

import pytest

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


URL = "/api/v1/audit/bundles/"


def test_an_auditor_starts_a_bundle_which_is_queued_and_recorded(world, api, auditor):
    response = api.as_user(auditor).post(URL, {"start": "2026-01-01", "end": "2026-03-31", "scope": "sox",
                                               "seed": 42}, format="json")
    assert response.status_code == 202, response.json()
    answer = response.json()
    assert answer["status"] == "queued" and answer["progress"] == 0 and answer["download"] is None
    assert answer["period_start"].startswith("2026-01-01T00:00:00") and answer["period_end"].startswith("2026-04-01")
    assert answer["scope"] == "sox" and answer["seed"] == 42 and answer["requested_by"] == auditor.username
    audit_seal()
    assert AuditEvent.objects.filter(action="export", object_id=str(answer["id"]), actor_name=auditor.username)


@pytest.mark.parametrize(("body", "field"), [
    ({"end": "2026-03-31", "seed": 1}, "start"),
    ({"start": "2026-02-30", "end": "2026-03-31", "seed": 1}, "start"),
    ({"start": "2026-03-01", "end": "2026-01-31", "seed": 1}, "end"),
    ({"start": "2025-01-01", "end": "2026-12-31", "seed": 1}, "end"),
    ({"start": "2026-01-01", "end": "2026-03-31", "seed": -1}, "seed"),
    ({"start": "2026-01-01", "end": "2026-03-31", "seed": "x"}, "seed"),
    ({"start": "2026-01-01", "end": "2026-03-31"}, "seed"),
    ({"start": "2026-01-01", "end": "2026-03-31", "seed": 1, "scope": "pci"}, "scope"),
    ({"start": "2026-01-01\x00", "end": "2026-03-31", "seed": 1}, "start"),
    ({"start": "2026-01-01", "end": "2026-03-31", "seed": 1, "owner": "me"}, "owner"),
])
def test_bad_input_is_a_400_naming_the_field(world, api, auditor, body, field):
    response = api.as_user(auditor).post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]], response.json()
    assert not EvidenceBundle.objects.exists()


def test_a_requester_may_neither_start_nor_read_nor_download_bundles(world, api, auditor, requester):
    bundle = build_here(auditor, world.period)
    client = api.as_user(requester)
    assert client.post(URL, {"start": "2026-01-01", "end": "2026-01-31", "seed": 1}, format="json").status_code == 403
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}{bundle.pk}/").status_code == 403
    assert client.get(f"{URL}{bundle.pk}/download/").status_code == 403


def test_the_list_and_one_bundle_show_status_progress_and_where_to_download(world, api, auditor):
    bundle = build_here(auditor, world.period)
    client = api.as_user(auditor)
    [listed] = client.get(URL).json()["results"]
    one = client.get(f"{URL}{bundle.pk}/").json()
    assert listed == one
    assert one["status"] == "ready" and one["progress"] == 100 and one["sha256"] == bundle.sha256
    assert one["download"].endswith(f"/api/v1/audit/bundles/{bundle.pk}/download/")
    assert client.get(f"{URL}999999/").status_code == 404


def test_a_ready_bundle_downloads_as_its_zip_and_the_download_is_recorded(world, api, auditor):
    bundle = build_here(auditor, world.period)
    response = api.as_user(auditor).get(f"{URL}{bundle.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert bundle.file_name in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == bundle_path(bundle).read_bytes()
    audit_seal()
    assert AuditEvent.objects.filter(action="export", object_id=str(bundle.pk),
                                     object_label__endswith="(download)").count() == 1


def test_a_bundle_not_ready_is_a_409_to_download(world, api, auditor):
    response = api.as_user(auditor).post(URL, {"start": "2026-01-01", "end": "2026-01-31", "seed": 1}, format="json")
    answer = api.as_user(auditor).get(f"{URL}{response.json()['id']}/download/")
    assert answer.status_code == 409


@pytest.mark.parametrize("path", ["/api/v1/audit/bundles/{}/", "/api/v1/audit/bundles/{}/download/"])
@pytest.mark.parametrize("pk", ["abc", "99999999999999999999", "-1"])
def test_a_bundle_id_that_is_no_bundle_is_a_404(world, api, auditor, path, pk):
    assert api.as_user(auditor).get(path.format(pk)).status_code == 404
