"""The published schema tells the truth: real answers of the main endpoints, over data where null and blank values
occur, validated against the operation's declared response (status, content type and body), refusals included."""

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
from tests.factories import make_user
from tests.governance.api_world import build_api_world

pytestmark = pytest.mark.django_db

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def schema(db):
    """The schema as the app serves it, with the app itself as transport. Like Django's test client, the requests
    keep the test's database connection open: it holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(admin_user):
    return build_api_world(admin_user)


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {api_token_create(actor=user, owner=user, name='schema').secret}"}


@pytest.fixture
def as_admin(admin_user):
    return bearer(admin_user)


def answer(schema, method: str, path: str, headers: dict, *, status: int = 200, **parts):
    """The body of a real answer, after checking it against what the schema declares for the operation."""
    if "body" in parts:
        parts["media_type"] = "application/json"
    case = schema[path][method].Case(headers=headers, **parts)
    response = case.call()
    assert response.status_code == status, response.text
    case.validate_response(response, checks=CHECKS)
    return response.json() if response.content else None


def test_the_schema_is_valid_openapi_and_declares_every_refusal_in_the_one_error_shape(schema):
    raw = schema.raw_schema
    assert raw["components"]["schemas"]["Error"]["required"] == ["errors"]
    for path, operations in raw["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method in ("post", "put", "patch", "delete"):
                assert "409" in codes, (method, path)
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in codes, (method, path)


def test_reads_of_every_main_endpoint_match_the_schema(schema, world, as_admin):
    draft, approved, artifact = world["draft"], world["approved"], world["artifact"]
    changes = answer(schema, "GET", "/api/v1/changes/", as_admin)
    assert {row["number"] for row in changes["results"]} == {draft.number, approved.number}
    detail = answer(schema, "GET", "/api/v1/changes/{number}/", as_admin, path_parameters={"number": draft.number})
    assert (detail["environment"], detail["implementer"], detail["template"], detail["risk_level"]) == \
        (None, None, None, "")
    history = answer(schema, "GET", "/api/v1/changes/{number}/", as_admin,
                     path_parameters={"number": approved.number})["status_history"]
    assert None in [move["actor"] for move in history]
    approvals = answer(schema, "GET", "/api/v1/changes/{number}/approvals/", as_admin,
                       path_parameters={"number": approved.number})
    assert [a["decision"] for a in approvals] == ["approve"]
    answer(schema, "GET", "/api/v1/changes/{number}/slots/", as_admin, path_parameters={"number": draft.number})

    for path in ("/api/v1/teams/", "/api/v1/environments/", "/api/v1/cis/", "/api/v1/relationships/",
                 "/api/v1/audit/events/", "/api/v1/audit/checkpoints/", "/api/v1/freezes/",
                 "/api/v1/maintenance-windows/", "/api/v1/lockdowns/", "/api/v1/calendar-feeds/",
                 "/api/v1/artifacts/", "/api/v1/trusted-keys/", "/api/v1/policies/", "/api/v1/standard-templates/"):
        assert answer(schema, "GET", path, as_admin)["results"], path
    for path, key in (("/api/v1/teams/{id}/", world["team"].pk), ("/api/v1/environments/{id}/", world["dev"].pk),
                      ("/api/v1/cis/{id}/", world["service"].pk), ("/api/v1/cis/{id}/impact/", world["database"].pk),
                      ("/api/v1/freezes/{id}/", world["freeze"].pk),
                      ("/api/v1/maintenance-windows/{id}/", world["window"].pk),
                      ("/api/v1/lockdowns/{id}/", world["lockdown"].pk),
                      ("/api/v1/standard-templates/{id}/", world["template"].pk)):
        answer(schema, "GET", path, as_admin, path_parameters={"id": key})
    assert answer(schema, "GET", "/api/v1/artifacts/{digest}/", as_admin,
                  path_parameters={"digest": artifact.digest})["signed_by"] is None
    assert answer(schema, "GET", "/api/v1/lockdowns/{id}/", as_admin,
                  path_parameters={"id": world["lockdown"].pk})["lifted_by"] is None
    assert answer(schema, "GET", "/api/v1/calendar-feeds/{id}/", as_admin,
                  path_parameters={"id": world["feed"].pk})["team"] is None
    active = answer(schema, "GET", "/api/v1/freezes/active/", as_admin, query={"environment": "dev"})
    assert [f["extra_approval_role"] for f in active["freezes"]] == [None] and active["ci"] is None
    events = answer(schema, "GET", "/api/v1/audit/events/", as_admin)["results"]
    answer(schema, "GET", "/api/v1/audit/events/{seq}/", as_admin, path_parameters={"seq": events[0]["seq"]})
    answer(schema, "GET", "/api/v1/audit/public-key/", as_admin)


def test_writes_and_their_answers_match_the_schema(schema, world, as_admin):
    raised = answer(schema, "POST", "/api/v1/changes/", as_admin, status=201,
                    body={"title": "Rotate keys", "affected_cis": ["payments-api"]})
    assert (raised["status"], raised["risk_level"], raised["environment"]) == ("draft", "", None)
    answer(schema, "PATCH", "/api/v1/changes/{number}/", as_admin, path_parameters={"number": raised["number"]},
           body={"environment": "dev"})
    answer(schema, "POST", "/api/v1/lockdowns/{id}/lift/", as_admin, path_parameters={"id": world["lockdown"].pk},
           body={"reason": "over"})
    check = answer(schema, "POST", "/api/v1/deployment-checks/", as_admin,
                   body={"change": world["approved"].number, "service": "payments-api", "environment": "prod",
                         "artifact": world["artifact"].digest})
    assert check["decision"] == "deny"
    answer(schema, "POST", "/api/v1/audit/checkpoints/", as_admin, status=201)
    feed = answer(schema, "POST", "/api/v1/calendar-feeds/", as_admin, status=201, body={"name": "Payments",
                                                                                         "team": "payments"})
    answer(schema, "POST", "/api/v1/calendar-feeds/{id}/revoke/", as_admin, path_parameters={"id": feed["id"]})


def test_refusals_match_the_declared_error_shape(schema, world, as_admin):
    number = {"number": world["draft"].number}
    answer(schema, "GET", "/api/v1/changes/{number}/", {}, status=401, path_parameters=number)
    answer(schema, "GET", "/api/v1/changes/{number}/", bearer(make_user("nobody")), status=403,
           path_parameters=number)
    answer(schema, "GET", "/api/v1/changes/{number}/", as_admin, status=404, path_parameters={"number": "CHG9999999"})
    answer(schema, "GET", "/api/v1/teams/", as_admin, status=404, query={"page": 99})
    refused = answer(schema, "POST", "/api/v1/changes/{number}/transitions/", as_admin, status=400,
                     path_parameters=number, body={"target": "nowhere"})
    assert refused["errors"][0]["field"] == "target"
    answer(schema, "POST", "/api/v1/lockdowns/{id}/lift/", as_admin, status=409,
           path_parameters={"id": world["lifted"].pk}, body={})
    answer(schema, "DELETE", "/api/v1/teams/{id}/", as_admin, status=409, path_parameters={"id": world["team"].pk})
    requester = bearer(world["requester"])
    answer(schema, "POST", "/api/v1/gates/status/", requester, status=403,
           body={"change": world["approved"].number, "service": "payments-api", "environment": "prod",
                 "artifact": world["artifact"].digest})
