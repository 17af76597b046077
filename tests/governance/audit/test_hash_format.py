"""The key page says how an event's hash is computed, closely enough that an auditor recomputes real ledger rows
from its words alone: the field order is read from the page, every other rule is followed as the page states it."""

import contextlib
import hashlib
import html
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from governance.audit.context import Actor, acting_as
from governance.audit.ledger import EVENT_FIELDS, GENESIS_HASH, HASHED_TEXTS, audit_record, audit_seal
from governance.models import AuditEvent
from tests.factories import make_ci, make_team

pytestmark = pytest.mark.django_db

KEY = "/audit/key/"


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


@pytest.fixture
def rows(auditor):
    """Real ledger rows: CIs written by the capture trigger (with awkward JSON), explicit events by a person, a
    task and the system, some with no actor id, non-ASCII text and keys that jsonb reorders."""
    team = make_team("paiements", name="Paiements Zürich")
    with acting_as(
        Actor(kind="user", user_id=auditor.pk, name="Anna Schmidt", request_id="req-1", client_ip="10.0.0.8")
    ):
        ci = make_ci(
            "payments-api",
            team=team,
            attributes={
                "zeta": 1,
                "a": [True, None, {"long key": "x", "k": 'quote " backslash \\ tab \t'}],
                "owner": "Zoë Ødegaard",
                "note": "line one\nline two\r\nbell \x07 end",
                "büro": "ünïcødé ☃ 𝄞",
                "empty": {},
                "list": [],
                "big": 12345678901234567890,
            },
        )
        ci.description = "payments, 2nd revision"
        ci.save()
    with acting_as(Actor(kind="task", name="governance.tasks.audit_checkpoint")):
        audit_record(
            "note",
            object_type="test.thing",
            object_id="7",
            object_label="a task's note",
            context={"bb": 2, "a": 1, "ccc": {"y": [1, 2], "x": "€"}},
        )
    with acting_as(Actor(kind="system", name="seed_demo")):
        audit_record("export", context={})
    audit_seal()
    return list(AuditEvent.objects.order_by("seq"))


def page(client) -> str:
    response = client.get(KEY)
    assert response.status_code == 200
    return response.content.decode()


def fields_in_order(text: str) -> list[str]:
    return re.findall(r'<li data-field="([a-z_]+)">', text)


def block(text: str, element_id: str) -> str:
    match = re.search(rf'<(pre|code)[^>]*id="{element_id}">(.*?)</\1>', text, re.S)
    assert match, element_id
    return html.unescape(match.group(2))


# --- the rules the page states, followed literally ---------------------------------------------------------


def jsonb_text(value) -> str:
    """JSON "as PostgreSQL writes a jsonb value", rule by rule from the page."""
    if isinstance(value, dict):
        # "the keys of each object sorted by their length in bytes of UTF-8, shorter first, and keys of the same
        # length byte by byte"; "one space after each : and after each ," between members
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{jsonb_string(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, str):
        return jsonb_string(value)
    if value is True or value is False or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return format(value, "f") if isinstance(value, Decimal) else str(value)  # "plain decimal, the digits recorded"


def jsonb_string(text: str) -> str:
    named = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(named.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in text) + '"'


def text_of(name: str, value) -> str:
    """Each field as the page's list says it is written."""
    if name == "occurred_at":  # "the time in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ"
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if name in ("changes", "context"):
        return jsonb_text(value)
    if value is None:  # "empty when there is none"
        return ""
    return str(value)  # seq and ids "in decimal", texts as recorded


def netstring(text: str) -> bytes:
    data = text.encode("utf-8")  # "the length of its text in bytes of UTF-8, in decimal, then :, the text, then ,"
    return str(len(data)).encode() + b":" + data + b","


def recomputed(event: dict, order: list[str]) -> str:
    # "the hash of the event before it (...) as its 64 characters", "one newline", then the fields in order
    data = event["prev_hash"].encode() + b"\n" + b"".join(netstring(text_of(n, event[n])) for n in order)
    return hashlib.sha256(data).hexdigest()  # "written as 64 lowercase hexadecimal characters"


def test_every_ledger_row_hashes_to_its_stored_hash_following_the_key_page(auditor_client, api, auditor, rows):
    text = page(auditor_client)
    for rule in (
        "SHA-256",
        "64 lowercase hexadecimal",
        "the byte <code>0x0A</code>",
        "in bytes of UTF-8",
        "no separator between the fields, no newline at the end",
        f"<code>{GENESIS_HASH}</code>",
    ):
        assert rule in text
    order = fields_in_order(text)
    assert order == ["seq", *EVENT_FIELDS]
    # What the auditor reads the rows from: the API, numbers kept as written.
    response = api.as_user(auditor).get("/api/v1/audit/events/?page_size=500")
    assert response.status_code == 200
    events = sorted(json.loads(response.content, parse_float=Decimal)["results"], key=lambda e: e["seq"])
    assert [e["seq"] for e in events] == [row.seq for row in AuditEvent.objects.order_by("seq")]
    assert len(events) >= 5
    assert any(e["actor_id"] is None for e in events) and any(e["actor_id"] is not None for e in events)
    assert any(e["changes"] for e in events) and any(len(e["context"]) > 1 for e in events)
    previous = GENESIS_HASH
    for event in events:
        assert event["prev_hash"] == previous
        assert recomputed(event, order) == event["hash"], event["seq"]
        previous = event["hash"]


def test_the_python_on_the_key_page_checks_every_row_of_a_real_export(auditor_client, rows, tmp_path, monkeypatch):
    recipe = block(page(auditor_client), "hash-recipe")
    export = auditor_client.get("/audit/?format=csv")
    assert export.status_code == 200
    (tmp_path / "changeboard-audit.csv").write_bytes(b"".join(export.streaming_content))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(recipe, "key-page-recipe", "exec"), {"__name__": "__main__"})  # noqa: S102 (the page's own code)
    assert printed.getvalue().split("\n")[:-1] == [f"{row.seq} True" for row in rows]


def test_the_worked_example_on_the_key_page_is_what_its_rules_give(auditor_client):
    text = page(auditor_client)
    shown = block(text, "hash-example-input")
    assert hashlib.sha256(shown.encode("utf-8")).hexdigest() == block(text, "hash-example-hash")
    prev_hash, _, body = shown.partition("\n")
    assert prev_hash == GENESIS_HASH
    # The shown bytes are the example's fields, as netstrings, in the listed order.
    table = re.findall(r"<tr><td><code>([a-z_]+)</code></td><td><code>(.*?)</code></td></tr>", text, re.S)
    assert [name for name, _ in table] == fields_in_order(text)
    assert body.encode() == b"".join(netstring(html.unescape(value)) for _, value in table)
    assert any(len(html.unescape(v)) != len(html.unescape(v).encode()) for _, v in table)  # lengths count bytes


def test_the_page_describes_each_hashed_field_once_in_the_ledgers_order(auditor_client):
    assert fields_in_order(page(auditor_client)) == [name for name, _ in HASHED_TEXTS] == ["seq", *EVENT_FIELDS]


def test_the_key_page_no_longer_speaks_of_sorted_keys_json(auditor_client):
    assert "JSON with sorted keys" not in page(auditor_client)
