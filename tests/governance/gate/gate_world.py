"""The world the gate tests ask about: a payments service, a signed build promoted to staging, and an
implementing change for prod whose window is open now."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.models import ChangeStatus
from releases.models import Artifact, Promotion
from releases.services import trusted_key_add
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

CHECKS = "/api/v1/deployment-checks/"
DIGEST = "sha256:" + "c" * 64


def question(world) -> dict:
    """What a pipeline asks the gate about the world: its change, deploying its build of payments-api to prod."""
    return {"change": world["change"].number, "service": "payments-api", "environment": "prod", "artifact": DIGEST}


@pytest.fixture
def world(admin_user, pipeline):
    team = make_team("payments")
    dev, staging, prod = (make_environment(n, p, is_production=n == "prod")
                          for p, n in enumerate(["dev", "staging", "prod"]))
    service = make_ci("payments-api", team=team, criticality=1)
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = trusted_key_add(actor=admin_user, team=team, name="ci", public_key_pem=pem)
    artifact = Artifact.objects.create(service=service, version="4.2.0", digest=DIGEST, created_by=pipeline,
                                       signature=private.sign(DIGEST.encode()).hex(), signed_by=key,
                                       signature_status="valid")
    for env in (dev, staging):
        Promotion.objects.create(artifact=artifact, environment=env, recorded_by=pipeline)
    now = datetime.now(UTC)
    change = make_change(make_user("rita", "requester"), cis=[service], environment=prod,
                         planned_start=now - timedelta(minutes=10), planned_end=now + timedelta(hours=1),
                         status=ChangeStatus.IMPLEMENTING)
    return {"service": service, "prod": prod, "staging": staging, "artifact": artifact, "change": change,
            "team": team}
