"""The offline verifier shipped in every bundle, run as a subprocess in a folder holding only the bundle: it passes
an untouched bundle and names the file or event after each kind of tampering."""

import ast
import csv
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.audit import signing
from governance.audit.ledger import GENESIS_HASH, event_hash
from governance.audit.views import HASH_EXAMPLE
from governance.evidence.verifier import verify_bundle
from tests.governance.evidence.bundle_world import (
    BundleWorld,
    build_bundle_world,
    build_here,
    extract,
    run_verifier,
    write_bundles_under,
)


@pytest.fixture
def evidence_dir(tmp_path, settings, monkeypatch) -> Path:
    return write_bundles_under(tmp_path / "evidence", settings, monkeypatch)


@pytest.fixture
def world(db, evidence_dir) -> BundleWorld:
    return build_bundle_world()


VERIFIER = Path(verify_bundle.__file__)


@pytest.fixture
def folder(world, auditor, tmp_path) -> Path:
    return extract(build_here(auditor, world.period), tmp_path / "bundle")


def resign(folder: Path, key=None) -> None:
    """Sign manifest.json again after the test changed it: with the ledger's own key (an insider rewriting the bundle)
    unless another is given."""
    manifest = (folder / "manifest.json").read_bytes()
    signature = (key.sign(manifest).hex() if key is not None else signing.sign(manifest))
    (folder / "manifest.sig").write_text(signature)


def remanifest(folder: Path, name: str) -> None:
    """Record a changed file's new hash and size in the manifest, as someone covering their tracks would."""
    import hashlib

    manifest = json.loads((folder / "manifest.json").read_bytes())
    data = (folder / name).read_bytes()
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                         rows=sum(1 for line in data.splitlines() if line.strip()))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    resign(folder)


def test_an_untouched_bundle_passes_and_says_what_was_checked(folder):
    result = run_verifier(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked: manifest.sig: a valid Ed25519 signature of manifest.json" in result.stdout
    assert "checked: population.csv: SHA-256 and size and row count match" in result.stdout
    assert "checked: ledger/events.jsonl: " in result.stdout and "each hash recomputed" in result.stdout
    assert result.stdout.count("has a valid signature and matches the chain") == 2  # the anchor and the cover
    assert result.stdout.rstrip().endswith("BUNDLE VERIFIED")


def test_the_bundle_reaches_back_to_the_checkpoint_before_its_period(folder):
    checkpoints = json.loads((folder / "ledger/checkpoints.json").read_bytes())["checkpoints"]
    events = [json.loads(line) for line in (folder / "ledger/events.jsonl").read_text().splitlines()]
    assert events[0]["seq"] == checkpoints[0]["seq"] + 1 and events[0]["prev_hash"] == checkpoints[0]["head_hash"]
    assert events[-1]["seq"] == checkpoints[-1]["seq"] and events[-1]["hash"] == checkpoints[-1]["head_hash"]
    assert any(event["object_label"] == "before the period" for event in events)
    assert any("Zürich ticket №42" in event["object_label"] for event in events)


def test_any_byte_changed_in_a_file_is_named(folder):
    target = folder / "exceptions.json"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    result = run_verifier(folder)
    assert result.returncode == 1
    assert "FAILED: exceptions.json: its SHA-256 is" in result.stdout
    assert result.stdout.count("FAILED:") == 1


def test_a_removed_csv_row_is_named_with_the_count(folder):
    target = folder / "population.csv"
    lines = target.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3  # header and the period's deployments
    target.write_bytes(b"".join(lines[:1] + lines[2:]))
    result = run_verifier(folder)
    assert result.returncode == 1
    [failure] = [line for line in result.stdout.splitlines() if line.startswith("FAILED:")]
    assert failure.startswith("FAILED: population.csv: its SHA-256 is")
    assert f"it has {len(lines) - 2} rows, the manifest says {len(lines) - 1}" in failure


def test_a_dropped_ledger_event_is_named_even_when_the_manifest_is_rewritten_and_signed(folder):
    target = folder / "ledger/events.jsonl"
    lines = target.read_text().splitlines(keepends=True)
    dropped = json.loads(lines[2])["seq"]
    target.write_text("".join(lines[:2] + lines[3:]))
    remanifest(folder, "ledger/events.jsonl")
    result = run_verifier(folder)
    assert result.returncode == 1
    assert f"FAILED: ledger/events.jsonl: event #{dropped} is missing" in result.stdout
    assert "manifest.sig: a valid Ed25519 signature" in result.stdout  # only the chain gives it away


def test_an_edited_ledger_event_is_named_even_with_its_hash_recomputed_and_the_manifest_signed(folder):
    target = folder / "ledger/events.jsonl"
    lines = target.read_text().splitlines(keepends=True)
    event = json.loads(lines[1])
    event["actor_name"] = "someone else"
    lines[1] = json.dumps(event, ensure_ascii=False) + "\n"
    target.write_text("".join(lines))
    remanifest(folder, "ledger/events.jsonl")
    result = run_verifier(folder)
    assert result.returncode == 1
    assert f"FAILED: ledger/events.jsonl: event #{event['seq']} was altered" in result.stdout

    # The editor recomputes the event's hash too: the next event no longer follows it.
    event["hash"] = event_hash(event["prev_hash"], event["seq"],
                               [event[name] for name in verify_bundle.EVENT_FIELDS])
    lines[1] = json.dumps(event, ensure_ascii=False) + "\n"
    target.write_text("".join(lines))
    remanifest(folder, "ledger/events.jsonl")
    result = run_verifier(folder)
    assert result.returncode == 1
    assert f"event #{event['seq'] + 1} does not follow event #{event['seq']}" in result.stdout
    assert "was altered" not in result.stdout


def test_a_manifest_signed_with_another_key_fails_even_with_the_bundled_key_replaced(folder, tmp_path):
    other = Ed25519PrivateKey.generate()
    resign(folder, other)
    result = run_verifier(folder)
    assert result.returncode == 1
    assert "FAILED: manifest.sig: not a valid signature of manifest.json by this key" in result.stdout

    # Replacing the bundled public key fools nobody who checks against the published one.
    from cryptography.hazmat.primitives import serialization

    (folder / "verifier/public_key.pem").write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    remanifest(folder, "verifier/public_key.pem")
    resign(folder, other)
    published = tmp_path / "published.pem"
    published.write_text(signing.public_key_document()["public_key_pem"])
    result = run_verifier(folder, "--public-key", str(published))
    assert result.returncode == 1
    assert "FAILED: manifest.sig: not a valid signature" in result.stdout


def test_a_missing_and_an_extra_file_are_named(folder):
    (folder / "controls.csv").unlink()
    (folder / "notes.txt").write_text("added later")
    result = run_verifier(folder)
    assert result.returncode == 1
    assert "FAILED: controls.csv: listed in the manifest but missing" in result.stdout
    assert "FAILED: notes.txt: present but not listed in the manifest" in result.stdout


def test_verify_audit_checks_a_bundle_offline(folder, django_db_blocker):
    with django_db_blocker.block():  # offline: touching the database would raise
        out = io.StringIO()
        call_command("verify_audit", "--bundle", str(folder), stdout=out)
        assert "BUNDLE VERIFIED" in out.getvalue()
        rows = list(csv.reader(io.StringIO((folder / "population.csv").read_text())))
        (folder / "population.csv").write_text("".join(",".join(row) + "\n" for row in rows[:-1]))
        with pytest.raises(CommandError, match=r"EVIDENCE BUNDLE BROKEN: population\.csv"):
            call_command("verify_audit", "--bundle", str(folder), stdout=io.StringIO())


def test_the_verifier_imports_nothing_of_the_project():
    tree = ast.parse(VERIFIER.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module}
    assert imported <= {"argparse", "csv", "hashlib", "io", "json", "sys", "zipfile", "dataclasses", "datetime",
                        "pathlib", "typing", "collections", "cryptography"}, imported


def test_the_verifier_hashes_events_as_the_ledger_does():
    seq, texts = HASH_EXAMPLE
    assert verify_bundle.event_hash(GENESIS_HASH, seq, texts) == event_hash(GENESIS_HASH, seq, texts)
