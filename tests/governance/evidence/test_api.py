"""The evidence API: read-only JSON of a period's population, exceptions, controls and reconciliation, for those who
read the evidence; bad input is a 400 naming the field."""

from urllib.parse import urlencode

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from governance.access.services import api_token_create
from governance.roles import Role
from tests.factories import make_user
from tests.governance.evidence.population_world import World, build_world


@pytest.fixture
def world(db) -> World:
    return build_world()

ENDPOINTS = ("population", "exceptions", "controls", "reconciliation")


def url(endpoint: str, **params) -> str:
    return f"/api/v1/audit/{endpoint}/?{urlencode(params)}"


def period_params(w: World, scope: str = "all") -> dict:
    period = w.period(scope)
    return {"start": period.start.isoformat(), "end": period.end.isoformat(), "scope": scope}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_requesters_and_outsiders_are_refused_every_endpoint(api, requester, outsider, endpoint):
    for person in (requester, outsider):
        answer = api.as_user(person).get(url(endpoint, start="2026-01-01", end="2026-03-31"))
        assert answer.status_code == 403, (person, answer.content)
    assert api.get(url(endpoint, start="2026-01-01", end="2026-03-31")).status_code in (401, 403)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_endpoints_only_read(api, auditor, admin_user, endpoint):
    for person in (auditor, admin_user):
        for method in ("post", "put", "patch", "delete"):
            answer = getattr(api.as_user(person), method)(url(endpoint, start="2026-01-01", end="2026-01-31"))
            # The auditor is refused any write before it reaches a view; an administrator meets a view that only reads.
            assert answer.status_code == (403 if person == auditor else 405), (person, method, answer.status_code)


def test_an_auditor_reads_the_period_as_json(api, world: World):
    client = api.as_user(world.auditor)
    params = period_params(world)
    page = client.get(url("population", **params, page_size=5))
    assert page.status_code == 200, page.content
    body = page.json()
    assert body["count"] == 21 and len(body["results"]) == 5
    assert body["results"][0]["deployment"] == world.deployments["clean"].number
    everything = [row["deployment"] for n in (1, 2, 3, 4, 5)
                  for row in client.get(url("population", **params, page_size=5, page=n)).json()["results"]]
    assert len(everything) == len(set(everything)) == 21
    assert client.get(url("population", **params, page=99)).json()["results"] == []
    clean = next(r for r in client.get(url("population", **params)).json()["results"]
                 if r["deployment"] == world.deployments["clean"].number)
    assert clean["approvals"][0]["approver"] == "cleo" and clean["approvals"][0]["role"] == "cab_member"
    assert clean["check_id"] and clean["digest"] in clean["approved_digests"]

    exceptions = client.get(url("exceptions", **params)).json()
    assert {e["key"] for e in exceptions["results"]} == world.expected_keys()
    controls = client.get(url("controls", **params)).json()["results"]
    assert [c["control"] for c in controls] == ["CM-1", "CM-2", "CM-3", "CM-4", "CM-5"]
    assert not any(c["passed"] for c in controls)
    reconciliation = client.get(url("reconciliation", **params)).json()
    assert {(u["side"], u["record"]) for u in reconciliation["unpaired"]} == {
        ("gate_check", str(world.idle_check.pk)), ("change", world.changes["never_deployed"].number),
        ("deployment", world.deployments["no_change"].number),
        ("deployment", world.deployments["denied_check"].number)}


def test_the_answers_match_the_published_schema(world: World):
    request_started.disconnect(close_old_connections)  # the requests keep the test's transaction, as the client does
    request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
        token = api_token_create(actor=world.auditor, owner=world.auditor, name="schema").secret
        for endpoint in ENDPOINTS:
            case = schema[f"/api/v1/audit/{endpoint}/"]["GET"].Case(
                headers={"Authorization": f"Bearer {token}"}, query=period_params(world))
            response = case.call()
            assert response.status_code == 200, response.text
            case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                      response_schema_conformance])
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_a_phi_scope_lists_only_deployments_of_phi_services(api, world: World):
    rows = api.as_user(world.auditor).get(url("population", **period_params(world, "phi"))).json()["results"]
    assert [r["deployment"] for r in rows] == [world.deployments["clean_phi"].number]


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "2026-01-01\x00", "end": "2026-01-31"}, "start"),
    ({"start": "2026-01-01", "end": "2026-13-40"}, "end"),
    ({"start": "yesterday", "end": "2026-01-31"}, "start"),
    ({"end": "2026-01-31"}, "start"),
    ({"start": "2026-01-01"}, "end"),
    ({"start": "2026-02-01", "end": "2026-01-01"}, "end"),
    ({"start": "2020-01-01", "end": "2026-01-01"}, "end"),
    ({"start": "0001-01-01", "end": "9999-12-31"}, "end"),
    ({"start": "2026-01-01T00:00:00+20:00", "end": "2026-01-31"}, "start"),
    ({"start": "2026-01-01", "end": "2026-01-31", "scope": "pci"}, "scope"),
    ({"start": "2026-01-01", "end": "2026-01-31", "scope": "all\x00"}, "scope"),
])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bad_input_is_a_400_naming_the_field(db, api, endpoint, params, field):
    auditor = make_user("auditor-x", Role.AUDITOR)
    answer = api.as_user(auditor).get(url(endpoint, **params))
    assert answer.status_code == 400, answer.content
    assert field in str(answer.json()), answer.json()


@pytest.mark.parametrize(("params", "field"), [
    ({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"page": "9" * 40}, "page"),
    ({"page_size": "501"}, "page_size"), ({"page_size": "-1"}, "page_size"),
])
def test_bad_paging_is_a_400_naming_the_field(api, auditor, params, field):
    answer = api.as_user(auditor).get(url("population", start="2026-01-01", end="2026-01-31", **params))
    assert answer.status_code == 400, answer.content
    assert answer.json()["errors"][0]["field"] == field
