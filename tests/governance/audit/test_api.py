"""The ledger's REST API: reading events, signed checkpoints an outside auditor can check, who may do what."""

import hashlib
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from governance.audit.ledger import GENESIS_HASH, audit_seal
from governance.models import AuditCapture, AuditCheckpoint, AuditEvent
from tests.factories import at, note, sealed, seq_of
from tests.ledger_guards import ledger_guards_lifted

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/audit/events/"
CHECKPOINTS = "/api/v1/audit/checkpoints/"
PUBLIC_KEY = "/api/v1/audit/public-key/"






def seqs(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [event["seq"] for event in response.json()["results"]]


def assert_error_shape(body: dict) -> None:
    assert set(body) == {"errors"} and body["errors"]
    for error in body["errors"]:
        assert set(error) == {"code", "message", "field"}


@pytest.fixture
def sample(db):
    note("payments-api", actor="alice", action="approve", object_type="cmdb.configurationitem", object_id="4711",
         when=at(1))
    note("Payments team", actor="bob", action="update", object_type="cmdb.team", object_id="4711", when=at(2))
    note("search-index", actor="alice", action="update", object_type="cmdb.configurationitem", object_id="4712",
         when=at(3))
    note("Audit ledger", actor="carol", action="reject", object_type="governance.thing", when=at(4))
    audit_seal()


@pytest.fixture
def auditor_api(api, auditor):
    return api.as_user(auditor)


@pytest.fixture
def auditor_session(auditor):
    """An auditor's API client that records nothing by calling: no bearer token, so no `token_used` event."""
    client = APIClient()
    client.force_authenticate(auditor)
    return client


# --- who may read -----------------------------------------------------------------------------------------


def test_an_anonymous_caller_gets_401_in_the_api_error_shape(sample):
    response = APIClient().get(EVENTS)
    assert response.status_code == 401
    assert_error_shape(response.json())
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_requester_gets_403_and_the_refusal_is_recorded(api, requester, sample):
    response = api.as_user(requester).get(EVENTS)
    assert response.status_code == 403
    assert_error_shape(response.json())
    [denial] = sealed(action="permission_denied", actor_name="requester")
    assert denial.actor_kind == "token" and denial.context["path"] == EVENTS


@pytest.mark.parametrize("url", [EVENTS, CHECKPOINTS, PUBLIC_KEY])
def test_nothing_of_the_ledger_is_open_without_signing_in(url):
    assert APIClient().get(url).status_code == 401


@pytest.mark.parametrize("url", [EVENTS, CHECKPOINTS])
def test_a_requester_may_read_neither_events_nor_checkpoints(api, requester, url):
    assert api.as_user(requester).get(url).status_code == 403


# --- reading events ---------------------------------------------------------------------------------------


def test_an_auditor_reads_the_ledger_in_pages_newest_first(auditor_api):
    for n in range(60):
        note(f"event-{n}")
    audit_seal()
    total = AuditEvent.objects.count()
    first = auditor_api.get(EVENTS)
    body = first.json()
    assert body["count"] == total and len(body["results"]) == 50 and body["previous"] is None
    second = auditor_api.get(body["next"])
    listed = seqs(first) + seqs(second)
    assert listed == list(range(total, 0, -1))
    assert second.json()["next"] is None


def test_each_event_carries_its_hashes_and_the_chain_links_each_to_the_one_before(auditor_api, sample):
    listed = auditor_api.get(EVENTS, {"page_size": 500}).json()["results"]
    oldest_first = list(reversed(listed))
    assert [e["seq"] for e in oldest_first] == list(range(1, len(oldest_first) + 1))
    assert oldest_first[0]["prev_hash"] == GENESIS_HASH
    for before, event in pairwise(oldest_first):
        assert len(event["hash"]) == 64
        assert event["prev_hash"] == before["hash"], f"event #{event['seq']} does not follow #{before['seq']}"
    assert len({e["hash"] for e in listed}) == len(listed)


@pytest.mark.parametrize(("query", "expected"), [
    ({"actor": "alice"}, ["search-index", "payments-api"]),
    ({"actor": "Bob"}, ["Payments team"]),
    ({"action": "reject"}, ["Audit ledger"]),
    ({"object_type": "cmdb.configurationitem"}, ["search-index", "payments-api"]),
    ({"object_type": "cmdb.configurationitem", "object_id": "4711"}, ["payments-api"]),
    ({"object_id": "4711"}, ["Payments team", "payments-api"]),
    ({"since": "2024-03-02T00:00:00Z", "until": "2024-03-04T00:00:00Z"}, ["search-index", "Payments team"]),
    ({"since": "2024-03-03T10:00:00Z", "until": "2024-03-04T10:00:00Z"}, ["search-index"]),
    ({"actor": "nobody"}, []),
])
def test_filters_narrow_the_events(auditor_api, sample, query, expected):
    assert seqs(auditor_api.get(EVENTS, query)) == [seq_of(label) for label in expected]


def test_an_unreadable_date_filter_is_a_400_naming_the_field(auditor_api, sample):
    response = auditor_api.get(EVENTS, {"since": "last tuesday"})
    assert response.status_code == 400
    body = response.json()
    assert_error_shape(body)
    assert [e["field"] for e in body["errors"]] == ["since"]


def test_one_event_is_read_by_its_sequence_number(auditor_api, sample):
    event = AuditEvent.objects.get(seq=seq_of("search-index"))
    response = auditor_api.get(f"{EVENTS}{event.seq}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["seq"], body["actor_name"], body["action"], body["object_label"]) == (
        event.seq, "alice", "update", "search-index")
    assert (body["prev_hash"], body["hash"]) == (event.prev_hash, event.hash)
    assert auditor_api.get(f"{EVENTS}999999/").status_code == 404


def _ledger_state() -> list[tuple]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "object_label", "hash"))


@pytest.mark.parametrize("persona", ["auditor", "admin_user"])
@pytest.mark.parametrize(("method", "on_detail"), [
    ("post", False), ("put", True), ("patch", True), ("delete", True), ("put", False), ("delete", False),
])
def test_the_events_api_is_read_only_even_for_auditors_and_administrators(
        api, request, sample, persona, method, on_detail):
    client = api.as_user(request.getfixturevalue(persona))
    audit_seal()
    before = _ledger_state()
    target = seq_of("payments-api")
    url = f"{EVENTS}{target}/" if on_detail else EVENTS
    response = getattr(client, method)(url, {"action": "forged", "object_label": "forged"}, format="json")
    assert response.status_code in (403, 405)
    audit_seal()
    after = _ledger_state()
    assert after[:len(before)] == before  # what was there is untouched; only new events (the refusal) follow
    assert not AuditEvent.objects.filter(action="forged").exists()
    assert not AuditEvent.objects.filter(object_label="forged").exists()


def test_listing_events_keeps_the_same_query_count_as_the_ledger_grows(auditor_api, django_assert_max_num_queries):
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert auditor_api.get(EVENTS).status_code == 200
        return len(captured)

    auditor_api.get(EVENTS)  # the token's first use stamps last_used_at; later calls do not
    for n in range(20):
        note(f"small-{n}", actor=f"user-{n}")
    audit_seal()
    small = queries_for_list()
    for n in range(60):
        note(f"large-{n}", actor=f"user-{n}")
    audit_seal()
    with django_assert_max_num_queries(12):
        large = queries_for_list()
    assert large == small


# --- signed checkpoints -----------------------------------------------------------------------------------


def test_an_auditor_creates_a_checkpoint_that_verifies_with_the_published_key(auditor_api, sample):
    response = auditor_api.post(CHECKPOINTS)
    assert response.status_code == 201, response.json()
    checkpoint = response.json()
    head = AuditEvent.objects.order_by("-seq").first()
    assert (checkpoint["seq"], checkpoint["head_hash"]) == (head.seq, head.hash)

    # What an independent auditor does: fetch the key, rebuild the message as documented, verify.
    document = auditor_api.get(PUBLIC_KEY).json()
    assert document["algorithm"] == "Ed25519"
    key = serialization.load_pem_public_key(document["public_key_pem"].encode())
    assert isinstance(key, Ed25519PublicKey)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert hashlib.sha256(raw).hexdigest() == document["key_id"] == checkpoint["key_id"]
    assert document["message_format"].startswith("changeboard-audit-checkpoint:v1:{seq}:{head_hash}:{created_at")
    created_at = datetime.fromisoformat(checkpoint["created_at"]).astimezone(UTC)
    message = (f"changeboard-audit-checkpoint:v1:{checkpoint['seq']}:{checkpoint['head_hash']}:"
               f"{created_at.isoformat(timespec='microseconds')}").encode()
    key.verify(bytes.fromhex(checkpoint["signature"]), message)  # raises InvalidSignature if wrong

    # And the signature binds the head: the same signature does not fit another head hash.
    forged = message.replace(checkpoint["head_hash"].encode(), b"f" * 64)
    with pytest.raises(InvalidSignature):
        key.verify(bytes.fromhex(checkpoint["signature"]), forged)


def test_the_checkpoint_fields_are_given_exactly_as_signed_so_the_message_is_them_joined(auditor_api, sample):
    checkpoint = auditor_api.post(CHECKPOINTS).json()
    key = serialization.load_pem_public_key(auditor_api.get(PUBLIC_KEY).json()["public_key_pem"].encode())
    message = ":".join(["changeboard-audit-checkpoint", "v1", str(checkpoint["seq"]), checkpoint["head_hash"],
                        checkpoint["created_at"]])
    key.verify(bytes.fromhex(checkpoint["signature"]), message.encode())
    listed = auditor_api.get(CHECKPOINTS).json()["results"][0]
    assert listed["created_at"] == checkpoint["created_at"]


def test_the_checkpoint_head_is_the_hash_the_events_api_shows_for_that_event(auditor_api, sample):
    checkpoint = auditor_api.post(CHECKPOINTS).json()
    event = auditor_api.get(f"{EVENTS}{checkpoint['seq']}/").json()
    assert event["hash"] == checkpoint["head_hash"]


def test_a_second_checkpoint_with_no_new_events_repeats_the_first(auditor_session, sample):
    first = auditor_session.post(CHECKPOINTS)
    second = auditor_session.post(CHECKPOINTS)
    assert first.status_code == second.status_code == 201
    assert second.json()["seq"] == first.json()["seq"]
    assert second.json()["id"] == first.json()["id"]
    assert AuditCheckpoint.objects.count() == 1
    listed = auditor_session.get(CHECKPOINTS).json()["results"]
    assert [c["seq"] for c in listed] == [first.json()["seq"]]


def test_a_checkpoint_posted_with_a_token_covers_that_token_use_so_the_next_one_moves_on(auditor_api, sample):
    first = auditor_api.post(CHECKPOINTS).json()
    second = auditor_api.post(CHECKPOINTS).json()
    assert second["seq"] > first["seq"]
    assert AuditEvent.objects.get(seq=second["seq"]).action == "token_used"


def test_a_checkpoint_of_an_empty_ledger_is_a_409_conflict(auditor_session):
    with ledger_guards_lifted(connection):  # a fresh installation: nothing captured, nothing sealed
        AuditCapture.objects.all().delete()
    assert not AuditEvent.objects.exists()
    response = auditor_session.post(CHECKPOINTS)
    assert response.status_code == 409
    body = response.json()
    assert_error_shape(body)
    assert body["errors"][0]["code"] == "conflict" and body["errors"][0]["field"] is None
    assert "empty" in body["errors"][0]["message"]
    assert not AuditCheckpoint.objects.exists()


def test_a_requester_may_not_create_a_checkpoint(api, requester, sample):
    response = api.as_user(requester).post(CHECKPOINTS)
    assert response.status_code == 403
    assert_error_shape(response.json())
    assert not AuditCheckpoint.objects.exists()


# --- who did it, through the API --------------------------------------------------------------------------


def test_a_ci_created_through_the_api_is_recorded_with_the_token_and_the_callers_request_id(api, admin_user, team):
    client = api.as_user(admin_user)
    response = client.post("/api/v1/cis/", {"name": "payments-api", "type": "service", "owner_team": "payments",
                                            "criticality": 1}, format="json", HTTP_X_REQUEST_ID="change-4711.a")
    assert response.status_code == 201, response.json()
    assert response["X-Request-ID"] == "change-4711.a"
    [event] = sealed(object_type="cmdb.configurationitem", action="create")
    token = admin_user.api_tokens.get()
    assert (event.actor_kind, event.actor_id, event.actor_name, event.token_id) == (
        "token", admin_user.pk, "admin", token.pk)
    assert event.request_id == "change-4711.a"
    assert event.object_id == str(response.json()["id"]) and event.object_label == "payments-api"
    # The same event, as the API shows it.
    shown = client.get(EVENTS, {"object_type": "cmdb.configurationitem", "action": "create"}).json()["results"]
    assert [(e["actor_kind"], e["token_id"], e["request_id"]) for e in shown] == [
        ("token", token.pk, "change-4711.a")]


def test_a_malformed_request_id_is_replaced_and_the_event_carries_the_replacement(api, admin_user, team):
    client = api.as_user(admin_user)
    response = client.post("/api/v1/cis/", {"name": "search-api", "type": "service", "owner_team": "payments",
                                            "criticality": 2}, format="json",
                           HTTP_X_REQUEST_ID="bad id */ with a comment closer")
    assert response.status_code == 201, response.json()
    issued = response["X-Request-ID"]
    assert issued and issued != "bad id */ with a comment closer"
    [event] = sealed(object_type="cmdb.configurationitem", action="create")
    assert event.request_id == issued
