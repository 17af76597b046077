"""Evidence bundles: requested by those who may export the ledger (itself a ledger event), built by a real worker
as a stream with progress, holding every part of the period's evidence, and reproducible from period, scope and
seed."""

import json
import time
import zipfile
from pathlib import Path

import pytest
from django.db import transaction

from governance.audit.context import acting_as
from governance.audit.ledger import audit_seal
from governance.core.errors import Forbidden, InvalidInput
from governance.evidence.bundle import bundle_build, bundle_path, bundle_request
from governance.evidence.verifier import verify_bundle
from governance.models import AuditEvent, EvidenceBundle
from tests.governance.evidence.bundle_world import (
    BundleWorld,
    as_user,
    build_bundle_world,
    build_here,
    write_bundles_under,
    zip_texts,
)


@pytest.fixture
def evidence_dir(tmp_path, settings, monkeypatch) -> Path:
    return write_bundles_under(tmp_path / "evidence", settings, monkeypatch)


@pytest.fixture
def world(db, evidence_dir) -> BundleWorld:
    return build_bundle_world()


PARTS = {"population.csv", "population.json", "reconciliation.json", "exceptions.csv", "exceptions.json",
         "controls.csv", "controls.json", "access_review.csv", "access_review.json", "sample.csv", "sample.json",
         "ledger/events.jsonl", "ledger/checkpoints.json", "verifier/verify_bundle.py", "verifier/README.md",
         "verifier/public_key.pem"}


def test_a_bundle_holds_every_part_listed_and_signed_in_its_manifest(world, auditor):
    bundle = build_here(auditor, world.period, seed=11)
    files = zip_texts(bundle)
    manifest = json.loads(files["manifest.json"])
    sampled = json.loads(files["sample.json"])["changes"]
    pdfs = {f"changes/{entry['change_number']}.pdf" for entry in sampled}
    assert len(pdfs) == 2  # the two deployments with a change; the third has none
    assert set(files) == PARTS | pdfs | {"manifest.json", "manifest.sig"}
    assert {entry["name"] for entry in manifest["files"]} == PARTS | pdfs
    assert all(files[name].startswith(b"%PDF") for name in pdfs)
    by_name = {entry["name"]: entry for entry in manifest["files"]}
    assert by_name["population.csv"]["rows"] == 3 and by_name["population.json"]["rows"] == 3
    assert by_name["population.csv"]["parameters"] == manifest["period"]
    assert "population(period)" in by_name["population.csv"]["query"]
    assert manifest["seed"] == 11 and manifest["period"]["scope"] == "all"
    assert manifest["ledger_head"]["seq"] == bundle.ledger_head_seq
    assert bundle.size_bytes == bundle_path(bundle).stat().st_size and len(bundle.sha256) == 64
    assert files["verifier/verify_bundle.py"] == Path(verify_bundle.__file__).read_bytes()  # verbatim


def test_the_same_period_scope_and_seed_give_the_same_files(world, auditor, admin_user):
    first = build_here(auditor, world.period, seed=5)
    second = build_here(admin_user, world.period, seed=5)
    one, two = zip_texts(first), zip_texts(second)
    assert set(one) == set(two)
    assert {name for name in one if one[name] != two[name]} == {"manifest.json", "manifest.sig"}
    assert json.loads(one["manifest.json"])["files"] == json.loads(two["manifest.json"])["files"]
    with zipfile.ZipFile(bundle_path(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2000, 1, 1, 0, 0, 0)}


def test_another_seed_draws_its_own_sample_and_a_scope_its_own_population(world, auditor):
    from dataclasses import replace

    phi = zip_texts(build_here(auditor, replace(world.period, scope="phi"), seed=5))
    assert phi["population.csv"].count(b"\n") == 2  # the header and the PHI service's one deployment
    assert b"records-api" in phi["population.csv"] and b"payments-api" not in phi["population.csv"]


def test_a_requester_may_not_request_a_bundle(world, requester):
    with pytest.raises(Forbidden):
        bundle_request(actor=requester, period=world.period, seed=1)
    assert not EvidenceBundle.objects.exists()


@pytest.mark.parametrize("seed", [-1, 2**63, "7", True, None])
def test_a_bad_seed_is_refused_by_name(world, auditor, seed):
    with pytest.raises(InvalidInput) as refused:
        bundle_request(actor=auditor, period=world.period, seed=seed)
    assert refused.value.field == "seed"


def test_the_auditor_group_holds_the_export_right_that_building_needs(world, auditor, requester):
    assert auditor.has_perm("governance.export_auditevent")
    assert not requester.has_perm("governance.export_auditevent")


def test_the_request_is_an_export_event_in_the_ledger(world, auditor):
    with acting_as(as_user(auditor)):
        bundle = bundle_request(actor=auditor, period=world.period, seed=3)
    audit_seal()
    [event] = AuditEvent.objects.filter(action="export", object_type="governance.evidencebundle",
                                        object_id=str(bundle.pk))
    assert event.actor_name == auditor.username
    assert event.context["seed"] == 3 and event.context["period"]["scope"] == "all"


@pytest.mark.django_db(transaction=True)
def test_a_worker_builds_the_bundle_with_progress_to_ready(migration_data, evidence_dir, celery_worker_process,
                                                           auditor):
    world = build_bundle_world()
    with acting_as(as_user(auditor)), transaction.atomic():
        bundle = bundle_request(actor=auditor, period=world.period, seed=9)
    seen = set()
    deadline = time.monotonic() + 120
    while bundle.status not in (EvidenceBundle.Status.READY, EvidenceBundle.Status.FAILED):
        assert time.monotonic() < deadline, f"the bundle is still {bundle.status} at {bundle.progress}%"
        time.sleep(0.05)
        bundle.refresh_from_db()
        seen.add((bundle.status, bundle.progress))
    assert bundle.status == EvidenceBundle.Status.READY, bundle.error
    assert bundle.progress == 100 and bundle.stage == "" and bundle.finished_at is not None
    assert bundle_path(bundle).parent == evidence_dir and bundle_path(bundle).stat().st_size == bundle.size_bytes
    assert any(status == EvidenceBundle.Status.BUILDING and 0 < progress < 100 for status, progress in seen), seen
    audit_seal()
    assert AuditEvent.objects.filter(action="export", object_id=str(bundle.pk)).count() == 1


def test_a_bundle_left_building_by_a_dead_worker_is_built_again_only_on_redelivery(world, auditor):
    with acting_as(as_user(auditor)):
        bundle = bundle_request(actor=auditor, period=world.period, seed=4)
    EvidenceBundle.objects.filter(pk=bundle.pk).update(status=EvidenceBundle.Status.BUILDING, progress=40)
    bundle_build(bundle.pk)  # a duplicate message: the build under way is left alone
    bundle.refresh_from_db()
    assert (bundle.status, bundle.progress) == (EvidenceBundle.Status.BUILDING, 40)
    bundle_build(bundle.pk, again=True)  # the message of the worker that died, handed back by the broker
    bundle.refresh_from_db()
    assert (bundle.status, bundle.progress) == (EvidenceBundle.Status.READY, 100)
