"""A small period for evidence bundles: a checkpoint signed before it, a few events between that checkpoint and the
period's start (so the bundle must reach back to anchor its chain), then clean and exceptional production
deployments and the events they leave. The period ends once all of it is sealed, so what is asked later (the
bundle requests themselves) falls after it."""

import io
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from governance.audit.context import Actor, acting_as
from governance.audit.ledger import audit_checkpoint_create, audit_seal
from governance.evidence.bundle import bundle_build, bundle_path, bundle_request
from governance.evidence.period import Period
from governance.models import EvidenceBundle
from tests.factories import note
from tests.governance.evidence.population_world import World


@dataclass
class BundleWorld:
    world: World
    period: Period


def build_bundle_world() -> BundleWorld:
    w = World()
    audit_seal()
    audit_checkpoint_create()
    note("before the period")
    audit_seal()
    time.sleep(0.01)
    start = timezone.now()
    w.reported("clean", w.change("clean"))
    w.reported("clean_phi", w.change("clean_phi", service=w.records), artifact=w.build(w.records))
    w.reported("no_change", None)
    note("an event in the period: Zürich ticket №42")
    audit_seal()
    time.sleep(0.01)
    return BundleWorld(world=w, period=Period(start=start - timedelta(microseconds=1), end=timezone.now()))


def write_bundles_under(directory: Path, settings, monkeypatch) -> Path:
    """Bundles written under `directory`, by this process and by the workers it starts (for an `evidence_dir`
    fixture of the test module)."""
    settings.EVIDENCE_DIR = str(directory)
    monkeypatch.setenv("EVIDENCE_DIR", str(directory))
    return directory


def as_user(user) -> Actor:
    return Actor(kind="user", name=user.get_username(), user_id=user.pk)


def build_here(actor, period: Period, seed: int = 7) -> EvidenceBundle:
    """Request a bundle and build it in this process (the worker's own function), ready."""
    with acting_as(as_user(actor)):
        bundle = bundle_request(actor=actor, period=period, seed=seed)
    bundle_build(bundle.pk)
    bundle.refresh_from_db()
    assert bundle.status == EvidenceBundle.Status.READY, bundle.error
    return bundle


def extract(bundle: EvidenceBundle, into: Path) -> Path:
    """The bundle's zip extracted into a folder of its own, holding nothing else."""
    into.mkdir(parents=True)
    with zipfile.ZipFile(bundle_path(bundle)) as archive:
        archive.extractall(into)
    return into


def zip_texts(bundle: EvidenceBundle) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle_path(bundle).read_bytes())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# Runs the bundled verifier with Changeboard's own packages made unimportable, so passing proves it needs none.
ISOLATED = """
import runpy, sys
class NoProject:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("governance", "cmdb", "releases", "tests", "django"):
            raise ImportError(f"the verifier tried to import {name}")
sys.meta_path.insert(0, NoProject())
sys.argv = ["verifier/verify_bundle.py", *sys.argv[1:]]
runpy.run_path("verifier/verify_bundle.py", run_name="__main__")
"""


def run_verifier(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The bundle's verifier run as a plain Python script in the bundle's folder, with no project code reachable."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "PYTHONSTARTUP")}
    return subprocess.run([sys.executable, "-c", ISOLATED, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
