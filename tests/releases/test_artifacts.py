"""Artifacts through the API: built once, signed by trusted keys, scanned, promoted one environment at a time."""

import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from governance.access.services import api_token_create
from releases.models import Artifact, TrustedKey
from releases.services import artifact_register, trusted_key_add
from tests.factories import make_ci, make_environment, make_team

pytestmark = pytest.mark.django_db
ARTIFACTS = "/api/v1/artifacts/"
DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.fixture
def service(db):
    return make_ci("payments-api", team=make_team("payments"))


@pytest.fixture
def chain(db):
    return [make_environment(name, position) for position, name in enumerate(["dev", "staging", "prod"])]


def register(client, **fields):
    body = {"service": "payments-api", "version": "4.2.0", "digest": DIGEST, "source_commit": "abc1234",
            "build_url": "https://ci.example/builds/1", **fields}
    return client.post(ARTIFACTS, body, format="json")


def test_a_pipeline_registers_a_build_and_a_retry_gives_the_same_artifact(api, pipeline, service):
    client = api.as_user(pipeline)
    first = register(client)
    assert first.status_code == 201, first.json()
    assert first.json()["signature_status"] == "unsigned"
    again = register(client)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert Artifact.objects.count() == 1


def test_a_rebuild_of_a_registered_version_is_refused(api, pipeline, service):
    client = api.as_user(pipeline)
    register(client)
    response = register(client, digest=OTHER)
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "digest"
    assert response.json()["errors"][0]["code"] == "rebuild_refused"
    assert Artifact.objects.get().digest == DIGEST


@pytest.mark.parametrize(("fields", "field"), [
    ({"digest": "sha256:XYZ"}, "digest"), ({"digest": "md5:" + "a" * 32}, "digest"),
    ({"service": "no-such-service"}, "service"), ({"source_commit": "not hex!"}, "source_commit"),
    ({"build_url": "not a url"}, "build_url"), ({"version": ""}, "version"),
])
def test_bad_input_names_the_field_and_writes_nothing(api, pipeline, service, fields, field):
    response = register(api.as_user(pipeline), **fields)
    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]
    assert not Artifact.objects.exists()


@pytest.mark.parametrize(("fields", "field"), [
    ({"source_commit": "ABC1234"}, "source_commit"), ({"source_commit": "abc"}, "source_commit"),
    ({"signature": "not hex"}, "signature"), ({"digest": "sha256:" + "A" * 64}, "digest"),
])
def test_the_service_keeps_the_hex_rules_for_every_caller(pipeline, service, fields, field):
    """Not only the API: the GitHub flow, the demo and the admin register through the same service."""
    given = {"version": "4.2.0", "digest": DIGEST, **fields}
    with pytest.raises(ValidationError) as refused:
        artifact_register(actor=pipeline, service=service, **given)
    assert field in refused.value.message_dict
    assert not Artifact.objects.exists()


def test_people_without_the_pipeline_role_cannot_register(api, requester, service):
    assert register(api.as_user(requester)).status_code == 403
    assert not Artifact.objects.exists()


def test_anonymous_callers_are_refused(client, service):
    assert client.get(ARTIFACTS).status_code == 401


def _keypair():
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, pem


def test_signatures_are_checked_against_the_owner_teams_trusted_keys(api, pipeline, admin_user, service):
    private, pem = _keypair()
    trusted_key_add(actor=admin_user, team=service.owner_team, name="ci-signer", public_key_pem=pem)
    client = api.as_user(pipeline)
    good = register(client, signature=private.sign(DIGEST.encode()).hex())
    assert good.json()["signature_status"] == "valid" and good.json()["signed_by"] == "ci-signer"
    forged = register(client, version="4.2.1", digest=OTHER, signature=private.sign(b"something else").hex())
    assert forged.json()["signature_status"] == "invalid"


def test_a_signature_from_a_key_nobody_trusts_is_untrusted(api, pipeline, service):
    private, _ = _keypair()
    response = register(api.as_user(pipeline), signature=private.sign(DIGEST.encode()).hex())
    assert response.json()["signature_status"] == "untrusted"


def test_only_the_owner_teams_unrevoked_keys_count(api, pipeline, admin_user, service):
    private, pem = _keypair()
    trusted_key_add(actor=admin_user, team=make_team("ledger"), name="theirs", public_key_pem=pem)
    signed = {"signature": private.sign(DIGEST.encode()).hex()}
    assert register(api.as_user(pipeline), **signed).json()["signature_status"] == "untrusted"
    revoked = trusted_key_add(actor=admin_user, team=service.owner_team, name="old", public_key_pem=_keypair()[1])
    TrustedKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    other = {"version": "4.2.1", "digest": OTHER, "signature": private.sign(OTHER.encode()).hex()}
    assert register(api.as_user(pipeline), **other).json()["signature_status"] == "untrusted"
    trusted_key_add(actor=admin_user, team=service.owner_team, name="current", public_key_pem=_keypair()[1])
    third = "sha256:" + "c" * 64
    response = register(api.as_user(pipeline), version="4.2.2", digest=third,
                        signature=private.sign(third.encode()).hex())
    assert response.json()["signature_status"] == "invalid"  # the team trusts a key, but not this one


@pytest.mark.parametrize("pem", ["-----BEGIN PUBLIC KEY-----\nnope\n", rsa.generate_private_key(
    public_exponent=65537, key_size=2048).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()])
def test_only_ed25519_public_keys_are_trusted(api, admin_user, service, pem):
    response = api.as_user(admin_user).post("/api/v1/trusted-keys/", {
        "team": "payments", "name": "bad", "public_key_pem": pem}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "public_key_pem"
    assert not TrustedKey.objects.exists()


def test_only_administrators_add_trusted_keys(api, pipeline, service):
    response = api.as_user(pipeline).post("/api/v1/trusted-keys/", {
        "team": "payments", "name": "mine", "public_key_pem": _keypair()[1]}, format="json")
    assert response.status_code == 403 and not TrustedKey.objects.exists()


def test_people_without_the_pipeline_role_cannot_promote_or_scan(api, pipeline, requester, service, chain):
    register(api.as_user(pipeline))
    client = api.as_user(requester)
    assert client.post(f"{ARTIFACTS}{DIGEST}/promotions/", {"environment": "dev"}, format="json").status_code == 403
    assert client.post(f"{ARTIFACTS}{DIGEST}/scans/", {"kind": "sast", "tool": "semgrep", "verdict": "pass"},
                       format="json").status_code == 403
    artifact = Artifact.objects.get()
    assert not artifact.promotions.exists() and not artifact.scans.exists()


@pytest.mark.django_db(transaction=True)
def test_the_same_build_registered_twice_at_once_is_one_artifact(migration_data, pipeline):
    make_ci("payments-api", team=make_team("payments"))
    clients = []
    for n in range(2):  # a client and token each: the two requests share nothing but the database
        clients.append(APIClient())
        clients[-1].credentials(HTTP_AUTHORIZATION="Bearer " + api_token_create(
            actor=pipeline, owner=pipeline, name=f"runner {n}").secret)
    barrier, answers = threading.Barrier(2), []

    def send(client):
        barrier.wait()
        answers.append(register(client).status_code)
        connections.close_all()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 201] and Artifact.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_registration_that_meets_the_same_build_mid_insert_answers_with_it(migration_data, pipeline):
    """The race made certain: the other registration has inserted the build and not committed, so this one finds
    nothing, waits on the unique digest and then fails to insert; it must answer with the build committed."""
    service = make_ci("payments-api", team=make_team("payments"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + api_token_create(actor=pipeline, owner=pipeline,
                                                                       name="runner").secret)
    inserted, commit, answers = threading.Event(), threading.Event(), []

    def other_registration():
        with transaction.atomic():
            Artifact.objects.create(service=service, version="4.2.0", digest=DIGEST, created_by=pipeline)
            inserted.set()
            commit.wait(10)
        connections.close_all()

    def this_registration():
        answers.append(register(client))
        connections.close_all()

    other = threading.Thread(target=other_registration)
    other.start()
    inserted.wait(10)
    this = threading.Thread(target=this_registration)
    this.start()
    with connection.cursor() as cursor:  # until this registration waits on the other's uncommitted row
        for _ in range(200):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the second registration never waited on the first")
    commit.set()
    for thread in (other, this):
        thread.join()
    [answer] = answers
    assert answer.status_code == 201, answer.content
    assert answer.json()["id"] == Artifact.objects.get().pk


def test_an_artifact_is_promoted_one_environment_at_a_time(api, pipeline, service, chain):
    client = api.as_user(pipeline)
    register(client)
    url = f"{ARTIFACTS}{DIGEST}/promotions/"
    skipped = client.post(url, {"environment": "staging"}, format="json")
    assert skipped.status_code == 409 and skipped.json()["errors"][0]["code"] == "promotion_out_of_order"
    assert client.post(url, {"environment": "dev"}, format="json").status_code == 201
    assert client.post(url, {"environment": "staging"}, format="json").status_code == 201
    detail = client.get(f"{ARTIFACTS}{DIGEST}/").json()
    assert [p["environment"] for p in detail["promotions"]] == ["dev", "staging"]


def test_scan_results_are_attached_with_counts_by_severity(api, pipeline, service):
    client = api.as_user(pipeline)
    register(client)
    response = client.post(f"{ARTIFACTS}{DIGEST}/scans/", {"kind": "dependency", "tool": "trivy",
                                                           "verdict": "fail", "critical": 2, "high": 5},
                           format="json")
    assert response.status_code == 201
    scans = client.get(f"{ARTIFACTS}{DIGEST}/").json()["scans"]
    assert [(s["tool"], s["verdict"], s["critical"], s["high"]) for s in scans] == [("trivy", "fail", 2, 5)]
    bad = client.post(f"{ARTIFACTS}{DIGEST}/scans/", {"kind": "fuzz", "tool": "x", "verdict": "pass"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "kind"


def test_listing_artifacts_keeps_a_fixed_number_of_queries(api, pipeline, service, chain,
                                                          django_assert_max_num_queries):
    client = api.as_user(pipeline)
    for n in range(3):
        register(client, version=f"1.0.{n}", digest="sha256:" + f"{n:064x}")
    with django_assert_max_num_queries(12):  # a query per row would be 30 and more
        assert client.get(ARTIFACTS).json()["count"] == 3
    for n in range(3, 30):
        register(client, version=f"1.0.{n}", digest="sha256:" + f"{n:064x}")
    with django_assert_max_num_queries(12):
        assert client.get(ARTIFACTS).json()["count"] == 30
