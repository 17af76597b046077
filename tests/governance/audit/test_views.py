"""The audit pages, through Django's test client: search, CSV export, an object's history, the public key."""

import csv
import hashlib
import io
import json
import re
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.audit import signing
from governance.audit.ledger import EVENT_FIELDS, GENESIS_HASH, audit_seal, event_hash
from governance.core import ed25519
from governance.models import AuditCapture, AuditEvent
from governance.models.audit import ActorKind
from tests.factories import at, make_ci, make_user, note, sealed, seq_of

pytestmark = pytest.mark.django_db

SEARCH = "/audit/"
KEY = "/audit/key/"


def history_url(object_type: str, object_id) -> str:
    return f"/audit/history/{object_type}/{object_id}/"






def shown(response) -> list[int]:
    """The event numbers in the search page's results table, in page order."""
    assert response.status_code == 200
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [int(seq) for seq in re.findall(r"<tr>\s*<td>(\d+)</td>", body)]


def history_seqs(response) -> list[int]:
    return [int(seq) for seq in re.findall(r'<span class="muted seq">#(\d+)</span>', response.content.decode())]


def exported(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def sample(db):
    """Four events in early March 2024 by three people, on three kinds of object."""
    note("payments-api", actor="alice", action="approve", object_type="cmdb.configurationitem", when=at(1))
    note("Payments team", actor="bob", action="update", object_type="cmdb.team", when=at(2))
    note("search-index", actor="alice", action="update", object_type="cmdb.configurationitem", when=at(3))
    note("Audit ledger", actor="carol", action="reject", object_type="governance.thing", when=at(4))
    audit_seal()


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


# --- who may search ---------------------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get(SEARCH)
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/audit/"


@pytest.mark.parametrize("persona", ["requester", "cab_member", "outsider"])
def test_people_without_an_audit_role_are_refused_and_the_refusal_is_itself_recorded(client, request, persona):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    response = client.get(SEARCH)
    assert response.status_code == 403
    assert b"audit/history" not in response.content
    [denial] = sealed(action="permission_denied", actor_name=user.username)
    assert denial.actor_kind == "user" and denial.actor_id == user.pk
    assert denial.context["path"] == SEARCH and denial.context["method"] == "GET"


@pytest.mark.parametrize("persona", ["auditor", "admin_user"])
def test_auditors_and_administrators_see_every_event_newest_first(client, request, persona, sample):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(SEARCH)
    seqs = shown(response)
    assert seqs == sorted(seqs, reverse=True)
    assert set(seqs) == set(AuditEvent.objects.values_list("seq", flat=True))
    for label in ["payments-api", "Payments team", "search-index", "Audit ledger"]:
        assert seq_of(label) in seqs


def test_the_search_page_seals_what_was_just_captured(auditor_client):
    note("fresh-capture")
    assert AuditEvent.objects.filter(object_label="fresh-capture").count() == 0
    response = auditor_client.get(SEARCH, {"object": "fresh-capture"})
    assert shown(response) == [seq_of("fresh-capture")]


# --- filters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ({"actor": "alice"}, ["search-index", "payments-api"]),
    ({"actor": "ALICE"}, ["search-index", "payments-api"]),
    ({"action": "reject"}, ["Audit ledger"]),
    ({"object_type": "cmdb.team"}, ["Payments team"]),
    ({"object": "PAYMENTS"}, ["Payments team", "payments-api"]),
    ({"since": "2024-03-02T00:00:00Z", "until": "2024-03-04T00:00:00Z"}, ["search-index", "Payments team"]),
    ({"until": "2024-03-02T10:00:00Z"}, ["payments-api"]),
    ({"actor": "alice", "object_type": "cmdb.configurationitem", "since": "2024-03-02T00:00:00Z"},
     ["search-index"]),
    ({"actor": "nobody"}, []),
])
def test_search_filters_narrow_the_results(auditor_client, sample, query, expected):
    response = auditor_client.get(SEARCH, query)
    assert shown(response) == [seq_of(label) for label in expected]
    if not expected:
        assert b"No event matches." in response.content


def test_a_bad_date_is_shown_as_a_form_error_not_a_server_error(auditor_client, sample):
    response = auditor_client.get(SEARCH, {"since": "last tuesday"})
    assert response.status_code == 200
    assert b'<span class="errors">Enter a valid date/time.</span>' in response.content


def test_the_search_page_keeps_the_same_query_count_as_the_ledger_grows(
        auditor_client, django_assert_max_num_queries):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert auditor_client.get(SEARCH).status_code == 200
        return len(captured)

    for n in range(20):
        note(f"small-{n}", actor=f"user-{n}", when=at(1 + n % 20))
    audit_seal()
    small = queries_for_page()
    for n in range(60):
        note(f"large-{n}", actor=f"user-{n}", when=at(1 + n % 20))
    audit_seal()
    assert AuditEvent.objects.count() >= 80
    with django_assert_max_num_queries(12):
        large = queries_for_page()
    assert large == small


# --- CSV export -------------------------------------------------------------------------------------------


def test_an_auditor_exports_the_matching_events_as_csv_oldest_first(auditor_client, sample):
    response = auditor_client.get(SEARCH, {"format": "csv", "actor": "alice"})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="changeboard-audit.csv"'
    rows = exported(response)
    assert [int(row["seq"]) for row in rows] == [seq_of("payments-api"), seq_of("search-index")]
    assert [row["object_label"] for row in rows] == ["payments-api", "search-index"]
    assert {row["actor_name"] for row in rows} == {"alice"}
    first = rows[0]
    event = AuditEvent.objects.get(seq=int(first["seq"]))
    assert (first["action"], first["object_type"], first["hash"], first["prev_hash"]) == (
        "approve", "cmdb.configurationitem", event.hash, event.prev_hash)


def test_the_export_starts_with_a_header_row(auditor_client, sample):
    response = auditor_client.get(SEARCH, {"format": "csv", "action": "reject"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    header = lines[0].split(",")
    assert header[0] == "seq"
    assert {"occurred_at", "actor_name", "action", "object_type", "object_id", "object_label", "changes",
            "prev_hash", "hash"} <= set(header)
    assert len(lines) == 2


def test_an_export_is_itself_recorded_with_its_filters_and_count(auditor_client, auditor, sample):
    rows = exported(auditor_client.get(SEARCH, {"format": "csv", "actor": "alice", "object": "a"}))
    assert len(rows) == 2
    [export] = sealed(action="export")
    assert export.actor_name == "auditor" and export.actor_id == auditor.pk
    assert export.context == {"filters": {"actor": "alice", "object": "a"}, "events": 2}
    assert export.request_id
    # It is in the ledger: the next search shows it, and the next export contains it.
    assert shown(auditor_client.get(SEARCH, {"action": "export"})) == [export.seq]
    again = exported(auditor_client.get(SEARCH, {"format": "csv", "action": "export"}))
    assert [int(row["seq"]) for row in again] == [export.seq]


def test_an_exported_row_carries_everything_its_hash_covers_so_anyone_can_recompute_the_chain(
        auditor_client, sample):
    AuditCapture.objects.create(actor_kind=ActorKind.TOKEN, actor_id=7, token_id=9, actor_name="pipeline",
                                action="update", object_type="cmdb.team", object_id="3", object_label="Cards",
                                changes={"name": {"before": "Card", "after": "Cards"}},
                                request_id="req-1", client_ip="10.0.0.1", context={"why": "rename"})
    rows = exported(auditor_client.get(SEARCH, {"format": "csv"}))
    assert len(rows) == AuditEvent.objects.count() >= 5
    previous = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == previous
        texts = [row[name] for name in EVENT_FIELDS]
        assert event_hash(previous, int(row["seq"]), texts) == row["hash"], f"row #{row['seq']}"
        previous = row["hash"]
    renamed = rows[-1]
    assert (renamed["actor_id"], renamed["token_id"]) == ("7", "9")
    assert json.loads(renamed["changes"]) == {"name": {"before": "Card", "after": "Cards"}}
    assert json.loads(renamed["context"]) == {"why": "rename"}
    assert datetime.fromisoformat(renamed["occurred_at"]).tzinfo is not None


def test_an_export_with_an_invalid_date_is_refused_instead_of_exporting_the_whole_ledger(auditor_client, sample):
    response = auditor_client.get(SEARCH, {"format": "csv", "since": "last tuesday"})
    assert response.status_code == 400
    assert not response.get("Content-Type", "").startswith("text/csv")
    assert b"Enter a valid date/time." in response.content
    assert sealed(action="export") == []


def test_a_ledger_reader_without_the_export_permission_may_search_but_not_export(client, sample):
    reader = make_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(reader)
    page = client.get(SEARCH)
    assert page.status_code == 200
    assert b"format=csv" not in page.content
    response = client.get(SEARCH, {"format": "csv"})
    assert response.status_code == 403
    assert not response.get("Content-Type", "").startswith("text/csv")
    assert sealed(action="export") == []
    assert [e.context["path"] for e in sealed(action="permission_denied", actor_name="reader")] == [SEARCH]


def test_people_without_an_audit_role_cannot_export(client, requester, sample):
    client.force_login(requester)
    assert client.get(SEARCH, {"format": "csv"}).status_code == 403
    assert sealed(action="export") == []


# --- object history ---------------------------------------------------------------------------------------


@pytest.fixture
def edited_ci(team):
    """payments-api created at criticality 2 and raised to 1; another CI changed beside it."""
    ci = make_ci("payments-api", team=team, criticality=2)
    ci.criticality = 1
    ci.save()
    other = make_ci("search-index", team=team, criticality=3)
    other.description = "not this one"
    other.save()
    return ci


def test_a_ci_history_shows_its_creation_and_updates_with_before_and_after_values(auditor_client, edited_ci):
    response = auditor_client.get(history_url("cmdb.configurationitem", edited_ci.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    own = sealed(object_type="cmdb.configurationitem", object_id=str(edited_ci.pk))
    assert [e.action for e in own] == ["create", "update"]
    assert history_seqs(response) == [own[1].seq, own[0].seq]
    assert '<span class="action action-create">create</span>' in html
    assert '<span class="action action-update">update</span>' in html
    # Fields by their names, choices by their labels; a new row's values alone (test_history_words.py has more).
    assert ('<tr><td>Criticality</td><td class="before">Tier 2 (business critical)</td>'
            '<td class="after">Tier 1 (mission critical)</td></tr>') in html
    assert '<tr><td>Name</td><td class="after">payments-api</td></tr>' in html
    assert "search-index" not in html and "not this one" not in html


def test_the_history_returns_only_its_panel_to_htmx(auditor_client, edited_ci):
    response = auditor_client.get(history_url("cmdb.configurationitem", edited_ci.pk), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<title>" not in html
    assert html.lstrip().startswith('<section class="card history" id="history">')
    assert '<td class="before">Tier 2 (business critical)</td><td class="after">Tier 1 (mission critical)</td>' in html


def test_the_history_response_varies_on_hx_request_so_a_cache_never_serves_the_panel_as_the_page(
        auditor_client, edited_ci):
    url = history_url("cmdb.configurationitem", edited_ci.pk)
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = auditor_client.get(url, **headers)
        vary = {h.strip().lower() for h in response.get("Vary", "").split(",")}
        assert "hx-request" in vary


def test_a_cmdb_reader_may_read_a_ci_history(client, cab_member, edited_ci):
    client.force_login(cab_member)
    response = client.get(history_url("cmdb.configurationitem", edited_ci.pk))
    assert response.status_code == 200
    assert len(history_seqs(response)) == 2


def test_someone_without_a_role_may_not_read_a_ci_history(client, outsider, edited_ci):
    client.force_login(outsider)
    response = client.get(history_url("cmdb.configurationitem", edited_ci.pk))
    assert response.status_code == 403
    assert b"payments-api" not in response.content
    [denial] = sealed(action="permission_denied", actor_name="outsider")
    assert denial.context["path"] == history_url("cmdb.configurationitem", edited_ci.pk)


def test_an_anonymous_visitor_asking_for_a_history_is_sent_to_log_in(client, edited_ci):
    response = client.get(history_url("cmdb.configurationitem", edited_ci.pk))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_person_history_is_closed_to_cab_members_but_open_to_auditors(client, cab_member, auditor):
    person = make_user("dana")
    url = history_url("auth.user", person.pk)
    client.force_login(cab_member)
    assert client.get(url).status_code == 403
    client.force_login(auditor)
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<tr><td>Username</td><td class="after">dana</td></tr>' in html
    # The password is recorded as changed, never with its hash.
    assert '<tr><td>Password</td><td class="after">[redacted]</td></tr>' in html
    assert person.password not in html


def test_an_unknown_object_type_is_refused_to_a_cmdb_reader(client, cab_member):
    client.force_login(cab_member)
    assert client.get(history_url("no.such", 1)).status_code == 403


def test_the_ci_page_loads_its_history_panel_with_htmx(client, cab_member, edited_ci):
    client.force_login(cab_member)
    response = client.get(f"/cmdb/cis/{edited_ci.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'hx-get="{history_url("cmdb.configurationitem", edited_ci.pk)}" hx-trigger="load"' in html


def test_the_ci_page_loads_its_history_panel_once_in_the_body_and_keeps_a_plain_title(
        client, cab_member, edited_ci):
    client.force_login(cab_member)
    html = client.get(f"/cmdb/cis/{edited_ci.pk}/").content.decode()
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title == "payments-api · Changeboard"
    history = 'hx-get="/audit/history/cmdb.configurationitem/'
    assert html.count(history) == 1
    assert html.index(history) > html.index("<main>")


# --- the public key ---------------------------------------------------------------------------------------


def test_the_key_page_shows_the_public_key_and_the_id_that_names_it(auditor_client):
    response = auditor_client.get(KEY)
    assert response.status_code == 200
    html = response.content.decode()
    expected_id = ed25519.key_id(signing.public_key())
    assert f"<code>{expected_id}</code>" in html
    pem = re.search(r'<pre class="secret" id="public-key">(.*?)</pre>', html, re.S).group(1)
    assert pem.strip() == ed25519.public_key_pem(signing.public_key()).strip()
    # An auditor can check the id from the PEM alone.
    shown_key = serialization.load_pem_public_key(pem.encode())
    raw = shown_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert hashlib.sha256(raw).hexdigest() == expected_id


def test_the_key_page_needs_a_login(client):
    response = client.get(KEY)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
