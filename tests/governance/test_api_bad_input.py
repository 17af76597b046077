"""Bad input is a 4xx by construction: each class of bad value is sent to every endpoint that takes that kind of
value, enumerated from the published schema (or from the URL resolver), not to a sample; each answer is a 4xx
in the API's one error shape naming the input, and nothing is written."""

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from cmdb.models import Relationship
from governance.access.services import api_token_create
from governance.core.api_permissions import ApiPermission
from governance.core.inputs import MAX_JSON_DEPTH, MAX_NAMES_PER_LIST
from governance.models import AuditCapture, AuditCheckpoint, AuditEvent, ChangeRequest
from governance.models.changes import ApprovalPolicy
from tests.factories import make_ci, make_user
from tests.governance.api_world import build_api_world

pytestmark = pytest.mark.django_db

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
OPERATIONS = [(method.upper(), path, operation) for path, methods in SCHEMA["paths"].items()
              for method, operation in methods.items()]
# Flagger's webhook body is Flagger's own: its metadata carries the question and Flagger's other settings.
DIALECTS = {"/api/v1/gates/flagger/"}
# An inventory document, refused whole with its errors naming the file (as an uploaded file's are).
DOCUMENTS = {"/api/v1/cmdb/import/"}
# Signed by their senders, the signature checked before the body is read: unsigned, any body is a 401. Their own
# tests send them bad input signed (tests/governance/itsm/test_incident_webhook.py).
SIGNED = {"/api/v1/incidents/webhook/{source}/"}


def component(reference: str) -> dict:
    return SCHEMA["components"]["schemas"][reference.rsplit("/", 1)[1]]


def body_schema(operation: dict) -> dict | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = content["schema"]
    return component(schema["$ref"]) if "$ref" in schema else schema


def ids(cases) -> list[str]:
    return [f"{case[0]} {case[1]}" + (f" {case[2]}" if len(case) > 2 and isinstance(case[2], str) else "")
            for case in cases]


def media_types(operation: dict) -> list[str]:
    return list(operation.get("requestBody", {}).get("content", {}))


def fields_of(method: str, path: str) -> list[str]:
    return list(body_schema(SCHEMA["paths"][path][method.lower()]).get("properties", {}))


def parameters_of(method: str, path: str, where: str) -> list[dict]:
    return [parameter for parameter in SCHEMA["paths"][path][method.lower()].get("parameters", [])
            if parameter["in"] == where]


WITH_BODY = [(method, path) for method, path, operation in OPERATIONS
             if body_schema(operation) is not None and path not in SIGNED]
WITH_FIELDS = [(method, path) for method, path in WITH_BODY if fields_of(method, path)]
WITH_PATH_PARAMETERS = [(method, path) for method, path, _ in OPERATIONS if parameters_of(method, path, "path")]
WITH_QUERY_PARAMETERS = [(method, path) for method, path, _ in OPERATIONS if parameters_of(method, path, "query")]
MOMENT_PARAMETERS = [(method, path, parameter["name"]) for method, path, operation in OPERATIONS
                     for parameter in operation.get("parameters", [])
                     if parameter["in"] == "query" and parameter["schema"].get("format") == "date-time"]
PAGED = [(method, path) for method, path, operation in OPERATIONS
         if any(parameter["name"] == "page_size" for parameter in operation.get("parameters", []))]
# A valid value of each query parameter some list requires (the audit population's period), so paging is what fails.
REQUIRED_QUERY = {"start": "2026-01-01", "end": "2026-01-31"}
PAGED_NEEDS = {(method, path): "".join(f"&{parameter['name']}={REQUIRED_QUERY[parameter['name']]}"
                                       for parameter in operation.get("parameters", [])
                                       if parameter["in"] == "query" and parameter.get("required"))
               for method, path, operation in OPERATIONS}
# jsonb columns: the fields whose schema is any JSON, or an object of anything.
JSON_FIELDS = [(method, path, name) for method, path, operation in OPERATIONS if body_schema(operation)
               for name, spec in body_schema(operation).get("properties", {}).items()
               if spec.get("type") in (None, "object") and "$ref" not in spec and "properties" not in spec
               and "enum" not in spec and "oneOf" not in spec and "allOf" not in spec]


def read_only_fields(operation: dict) -> list[str]:
    """What the response of the same resource shows but its request cannot set."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    reference = content.get("schema", {}).get("$ref", "")
    shown = re.sub(r"^Patched|Request$", "", reference.rsplit("/", 1)[-1])
    if shown not in SCHEMA["components"]["schemas"]:
        return []
    return sorted(set(SCHEMA["components"]["schemas"][shown].get("properties", {}))
                  - set(body_schema(operation).get("properties", {})))


READ_ONLY = [(method, path, name) for method, path, operation in OPERATIONS if body_schema(operation)
             for name in read_only_fields(operation)]


@pytest.fixture
def root(db):
    """May do anything, so that every request reaches the reading of its input."""
    return make_user("root", is_superuser=True, is_staff=True)


@pytest.fixture
def world(root):
    return build_api_world(root)


@pytest.fixture
def client(root) -> APIClient:
    client = APIClient()
    client.force_login(root)  # a session: no token_used events, so any write counts below
    return client


def url_of(path: str, world: dict, **values) -> str:
    """The path with each parameter a record of the world has (or `values`)."""
    resource = path.removeprefix("/api/v1/").split("/{", 1)[0]
    records = {"cis": world["service"], "environments": world["dev"], "teams": world["team"],
               "relationships": Relationship.objects.first(), "freezes": world["freeze"],
               "maintenance-windows": world["window"], "lockdowns": world["lockdown"],
               "policies": ApprovalPolicy.objects.order_by("pk").first(), "calendar-feeds": world["feed"],
               "audit/checkpoints": AuditCheckpoint.objects.first(), "deployment-plans": world["plan"],
               "incidents": world["incident"]}
    number = world["deployment"] if resource == "rollouts" else world["draft"]
    keys = {"number": number.number, "digest": world["artifact"].digest,
            "seq": str(AuditEvent.objects.order_by("seq").first().seq),
            "sid": str(world["incident"].suspects.get().pk), "source": "servicenow"}

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        return keys[name] if name in keys else str(records[resource].pk)

    return re.sub(r"\{(\w+)\}", value, path)


def written() -> int:
    """Every write to a governed table is captured by a trigger in its own transaction: a count of what was."""
    return AuditCapture.objects.count() + AuditEvent.objects.count()


def errors_of(response) -> list[dict]:
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = response.json()
    assert set(body) == {"errors"} and body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"code", "message", "field"}, error
    return body["errors"]


ANY = object()


def refused(response, status: int, *, field: str | object | None = ANY, code: str | None = None) -> list[dict]:
    assert response.status_code == status, response.content[:500]
    errors = errors_of(response)
    if field is not ANY:
        assert any(error["field"] == field for error in errors), errors
    if code is not None:
        assert any(error["code"] == code for error in errors), errors
    return errors


def send(client, method: str, url: str, body, *, format: str = "json"):
    if format == "json":  # escaped as JSON allows: a lone surrogate cannot be encoded as UTF-8
        return client.generic(method, url, json.dumps(body), content_type="application/json")
    return getattr(client, method.lower())(url, body, format=format)


# NUL characters and unpaired surrogates: in paths, query strings and bodies (PostgreSQL refuses them in text).


@pytest.mark.parametrize(("method", "path"), WITH_PATH_PARAMETERS, ids=ids(WITH_PATH_PARAMETERS))
def test_a_nul_in_any_path_parameter_is_a_400_naming_it_before_any_query(client, world, method, path,
                                                                       django_assert_num_queries):
    for parameter in parameters_of(method, path, "path"):
        url = url_of(path, world, **{parameter["name"]: "CHG%0000100"})
        with django_assert_num_queries(0):
            response = client.generic(method, url)
        # A parameter whose route has a pattern (a digest's) matches no route with a NUL: none is named.
        field = None if "pattern" in parameter["schema"] else parameter["name"]
        refused(response, 400, field=field, code="nul_character")


@pytest.mark.parametrize(("method", "path"), WITH_QUERY_PARAMETERS, ids=ids(WITH_QUERY_PARAMETERS))
def test_a_nul_in_any_query_parameter_is_a_400_naming_it(client, world, method, path):
    for parameter in parameters_of(method, path, "query"):
        response = client.generic(method, f"{url_of(path, world)}?{parameter['name']}=prod%00")
        refused(response, 400, field=parameter["name"], code="nul_character")


@pytest.mark.parametrize("url", ["/api/v1/changes/", "/changes/", "/login/"])
def test_a_nul_in_a_cookie_or_a_header_is_a_400_before_the_session_is_looked_up(client, url,
                                                                               django_assert_num_queries):
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    with django_assert_num_queries(0):
        response = client.get(url)
    assert response.status_code == 400
    del client.cookies["sessionid"]
    with django_assert_num_queries(0):
        assert client.get(url, HTTP_X_FORWARDED_FOR="10.0.0.1\x00").status_code == 400


@pytest.mark.parametrize(("method", "path"), WITH_FIELDS, ids=ids(WITH_FIELDS))
def test_text_postgresql_cannot_hold_in_any_body_field_is_a_400_naming_it(client, world, method, path):
    url, before = url_of(path, world), written()
    for name in fields_of(method, path):
        for bad, code in (("x\x00y", "nul_character"), ("\udc00", "lone_surrogate")):
            refused(send(client, method, url, {name: bad}), 400, field=name, code=code)
            refused(send(client, method, url, {name: [bad]}), 400, field=f"{name}[0]", code=code)
            refused(send(client, method, url, {name: {bad: 1}}), 400, field=name, code=code)
    assert written() == before


@pytest.mark.parametrize(("method", "path"), WITH_FIELDS, ids=ids(WITH_FIELDS))
def test_a_nul_in_any_field_of_a_form_body_is_a_400_naming_it(client, world, method, path):
    url, before = url_of(path, world), written()
    declared = media_types(SCHEMA["paths"][path][method.lower()])
    for name in fields_of(method, path):
        if "multipart/form-data" in declared:
            refused(send(client, method, url, {name: "x\x00y"}, format="multipart"), 400, field=name,
                    code="nul_character")
        if "application/x-www-form-urlencoded" in declared:
            response = client.generic(method, url, f"{name}=x%00y", content_type="application/x-www-form-urlencoded")
            refused(response, 400, field=name, code="nul_character")
    assert written() == before


@pytest.mark.parametrize(("method", "path", "name"), JSON_FIELDS, ids=ids(JSON_FIELDS))
def test_a_jsonb_field_refuses_a_nul_or_a_lone_surrogate_at_any_depth_naming_the_field(client, world, method, path,
                                                                                       name):
    before = written()
    for bad, code in (({"owner": {"team": ["ok", "x\x00"]}}, "nul_character"),
                      ({"deep": [{"a\x00": 1}]}, "nul_character"), ({"k": "\udc00"}, "lone_surrogate")):
        response = send(client, method, url_of(path, world), {name: bad})
        errors = refused(response, 400, code=code)
        assert all(error["field"].startswith(name) for error in errors), errors
        # Sent as a form, the value reaches the field itself, which refuses it naming itself.
        response = send(client, method, url_of(path, world), {name: json.dumps(bad)}, format="multipart")
        refused(response, 400, field=name, code=code)
    assert written() == before


def test_a_cis_attributes_and_an_artifacts_provenance_are_among_the_jsonb_fields_checked():
    assert {(path, name) for _, path, name in JSON_FIELDS} >= {
        ("/api/v1/cis/", "attributes"), ("/api/v1/cis/{id}/", "attributes"), ("/api/v1/artifacts/", "provenance")}


def test_a_ci_keeps_attributes_nested_as_deep_as_allowed_and_refuses_one_level_more(client, world):
    url = f"/api/v1/cis/{world['service'].pk}/"
    allowed = nested = {"leaf": "ok"}
    for _ in range(MAX_JSON_DEPTH - 2):
        nested = {"next": nested}
    assert client.patch(url, {"attributes": nested}, format="json").status_code == 200, allowed
    refused(client.patch(url, {"attributes": {"next": nested}}, format="json"), 400, field="attributes",
            code="too_deep")


def test_a_nul_in_a_name_looked_up_in_a_form_body_is_refused_before_any_query(client, world):
    """The JSON parser refuses a NUL anywhere; sent as a form, a looked-up name meets its field's own check."""
    response = client.post("/api/v1/changes/", "title=x&environment=prod%00",
                           content_type="application/x-www-form-urlencoded")
    refused(response, 400, field="environment", code="nul_character")


@pytest.mark.parametrize(("body", "field"), [
    ({"environment": "p" * 51}, "environment"),
    ({"environment": {"name": "prod"}}, "environment"),
    ({"implementer": ["rita"]}, "implementer"),
    ({"template": 42}, "template"),
    ({"affected_cis": ["payments-api", {"name": "x"}]}, "affected_cis[1]"),
    ({"affected_cis": "payments-api"}, "affected_cis"),
    ({"affected_cis": {"payments-api": 1}}, "affected_cis"),
])
def test_a_malformed_name_in_a_body_is_a_400_naming_its_field(client, world, body, field):
    before = ChangeRequest.objects.count()
    refused(client.post("/api/v1/changes/", {"title": "x", **body}, format="json"), 400, field=field)
    assert ChangeRequest.objects.count() == before


# Pages: the same refusal, before any view.


def patterns(resolver: URLResolver = None, prefix: str = ""):
    """(route, pattern) of every URL of the project, routes as regular expressions or path() routes."""
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from patterns(entry, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def concrete(route: str, value: str) -> str:
    """A URL matching `route` with every parameter `value` (a digest or a number where the route demands one)."""
    route = re.sub(r"\(\?P<digest>[^)]*\)", "sha256:" + "a" * 64, route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", value, route)
    route = re.sub(r"<int:\w+>", "1", route)
    route = re.sub(r"<(?:\w+:)?\w+>", value, route)
    return "/" + route.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")


PAGES = sorted({concrete(route, "x%00y") for route, _ in patterns()
                if not route.startswith("api/") and (("<" in route and "<int:" not in route) or "(?P<" in route)})


def test_a_nul_in_the_path_of_any_page_is_a_400_not_a_server_error(root):
    client = Client()
    client.force_login(root)
    assert "/changes/x%00y/" in PAGES and "/releases/artifacts/x%00y/" in PAGES
    for url in PAGES:
        assert client.get(url).status_code == 400, url


def test_a_nul_in_the_query_string_of_any_page_is_a_400_not_a_server_error(root, world):
    client = Client()
    client.force_login(root)
    pages = sorted({concrete(route, "x") for route, _ in patterns()
                    if not route.startswith("api/") and "<" not in route and "(?P<" not in route})
    assert "/cmdb/" in pages and "/audit/" in pages and "/releases/gate-log/" in pages
    for url in pages:
        for parameter in ("environment", "owner_team", "team", "q", "actor", "ci", "since"):
            assert client.get(url, {parameter: "prod\x00"}).status_code == 400, url


@pytest.mark.parametrize(("url", "data", "field"), [
    ("/tokens/", {"name": "deploy", "services": "payments-api, pay\x00ments"}, "services"),
    ("/changes/new/", {"title": "Flags", "change_type": "normal", "feature_flags": "dark-mode\nnew\x00ui"},
     "feature_flags"),
])
def test_a_nul_in_a_list_of_words_on_a_page_is_a_form_error_not_a_server_error(requester, world, url, data, field):
    client = Client()
    client.force_login(requester)
    before = written()
    response = client.post(url, data)
    assert response.status_code in (200, 400)  # the form again, with its errors
    assert field in response.context["form"].errors
    assert "NUL character" in str(response.context["form"].errors[field])
    assert written() == before


def test_a_token_names_at_most_as_many_services_as_any_list_may(requester, world):
    client = Client()
    client.force_login(requester)
    response = client.post("/tokens/", {"name": "deploy", "services": ",".join(names(MAX_NAMES_PER_LIST + 1))})
    assert response.status_code == 200
    assert f"at most {MAX_NAMES_PER_LIST}" in str(response.context["form"].errors["services"])


# Time zone offsets PostgreSQL refuses (beyond ±15:59; Python accepts ±23:59).


@pytest.mark.parametrize(("method", "path", "name"), MOMENT_PARAMETERS, ids=ids(MOMENT_PARAMETERS))
def test_a_moment_filter_refuses_an_offset_postgresql_cannot_hold_naming_the_parameter(client, world, method, path,
                                                                                     name):
    now = datetime.now(UTC)
    for offset, status in (("+20:00", 400), ("-16:00", 400), ("+15:59", 200), ("-15:59", 200)):
        moment = now.astimezone(timezone_of(offset)).isoformat()
        response = client.generic(method, f"{url_of(path, world)}?{name}={moment.replace('+', '%2B')}")
        assert response.status_code == status, response.content[:300]
        if status == 400:
            refused(response, 400, field=name, code="offset_out_of_range")


def timezone_of(offset: str):
    from datetime import timezone
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = map(int, offset[1:].split(":"))
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def test_the_moment_filters_are_those_of_changes_the_ledger_and_active_freezes():
    assert {(path, name) for _, path, name in MOMENT_PARAMETERS} >= {
        ("/api/v1/changes/", "window_from"), ("/api/v1/changes/", "window_to"), ("/api/v1/audit/events/", "since"),
        ("/api/v1/audit/events/", "until"), ("/api/v1/freezes/active/", "at")}


def test_the_audit_page_shows_an_offset_out_of_range_as_a_form_error_and_refuses_to_export_it(root, world):
    client = Client()
    client.force_login(root)
    response = client.get("/audit/", {"since": "2024-03-01T00:00:00+20:00"})
    assert response.status_code == 200
    assert b"The time zone offset must lie within" in response.content
    assert client.get("/audit/", {"since": "2024-03-01T00:00:00+20:00", "format": "csv"}).status_code == 400


def test_a_window_given_with_a_far_offset_in_a_body_is_stored_as_the_same_moment_in_utc(client, world):
    response = client.post("/api/v1/changes/", {"title": "Rotate", "planned_start": "2031-01-01T10:00:00+20:00",
                                                "planned_end": "2031-01-01T12:00:00-23:59"}, format="json")
    assert response.status_code == 201, response.content
    change = ChangeRequest.objects.get(number=response.json()["number"])
    assert change.planned_start == datetime(2030, 12, 31, 14, tzinfo=UTC)
    assert change.planned_end == datetime(2031, 1, 2, 11, 59, tzinfo=UTC)


# Unknown methods: every route of the API answers 405, whatever its permission classes.


API_ROUTES = sorted({concrete(route, "CHG0000001") for route, _ in patterns() if route.startswith("api/v1/")})


def test_every_api_route_answers_405_to_a_method_it_does_not_serve(client, settings):
    # The GitHub webhook's caller is signed in by the signature over its body.
    settings.GITHUB_WEBHOOK_SECRET = "s3cret"
    make_user(settings.GITHUB_GATE_ACCOUNT)
    signed = {"X-Hub-Signature-256": "sha256=" + hmac.new(b"s3cret", b"", hashlib.sha256).hexdigest()}
    for url in API_ROUTES:
        for method in ("TRACE", "QUERY", "FOO", "PROPFIND"):
            refused(client.generic(method, url, headers=signed), 405, code="method_not_allowed")


def test_every_api_permission_class_answers_unknown_methods_through_the_shared_base():
    views = [pattern.callback for route, pattern in patterns() if route.startswith("api/v1/")]
    for view in views:
        cls = getattr(view, "cls", None) or view.view_class
        for permission in cls.permission_classes:
            assert issubclass(permission, ApiPermission), (cls, permission)


# Deep JSON and large bodies: refused before a view, an authentication or a serializer reads them.


@pytest.mark.parametrize(("method", "path"), WITH_BODY, ids=ids(WITH_BODY))
def test_json_nested_deeper_than_the_limit_is_a_400_too_deep(client, world, method, path):
    before = written()
    # Ten thousand levels: past Python's own recursion limit, within the smallest body limit (Flagger's).
    response = client.generic(method, url_of(path, world), "[" * 10_000, content_type="application/json")
    refused(response, 400, code="too_deep")
    assert written() == before


def test_a_hundred_thousand_brackets_are_a_400_too_deep(client, world):
    response = client.post("/api/v1/cis/", "[" * 100_000, content_type="application/json")
    refused(response, 400, code="too_deep")


def test_deep_json_sent_to_flaggers_webhook_without_credentials_is_refused_not_a_crash(db):
    response = APIClient().post("/api/v1/gates/flagger/", "[" * 10_000, content_type="application/json")
    refused(response, 400, code="too_deep")
    response = APIClient().post("/api/v1/gates/flagger/", "[" * 100_000, content_type="application/json")
    refused(response, 413, code="too_large")  # more than a webhook sends: not even read


@pytest.mark.parametrize(("method", "path"), WITH_BODY, ids=ids(WITH_BODY))
def test_a_body_over_the_size_limit_is_a_413_naming_the_limit(client, world, settings, method, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    limit = 2000  # Flagger's own limit is larger
    declared = media_types(SCHEMA["paths"][path][method.lower()])
    url, big = url_of(path, world), "x" * (limit + 1000)
    errors = refused(send(client, method, url, {"title": big}), 413, code="too_large")
    assert f"{limit} bytes" in errors[0]["message"]
    if "multipart/form-data" in declared:
        refused(send(client, method, url, {"title": big}, format="multipart"), 413, code="too_large")
    if "application/x-www-form-urlencoded" in declared:
        response = client.generic(method, url, "title=" + big, content_type="application/x-www-form-urlencoded")
        refused(response, 413, code="too_large")


def test_flaggers_webhook_reads_no_more_than_a_webhook_needs_before_authenticating(db):
    body = json.dumps({"metadata": {"token": "x", "padding": "x" * 20_000}})
    refused(APIClient().post("/api/v1/gates/flagger/", body, content_type="application/json"), 413, code="too_large")


def test_the_github_webhook_refuses_a_body_over_the_limit_in_the_apis_shape(db, settings):
    settings.GITHUB_WEBHOOK_SECRET = "s3cret"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = Client().post("/api/v1/github/webhook/", "{" + " " * 3000 + "}", content_type="application/json",
                             headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=00"})
    refused(response, 413, code="too_large")


# Every error under /api/ has the API's shape; pages keep Django's.


@pytest.mark.parametrize("url", ["/api/v1/nothing/", "/api/nothing", "/api/v1/changes/CHG0000001/nothing/"])
def test_an_api_address_that_matches_no_endpoint_is_a_404_in_the_apis_shape(client, url):
    refused(client.get(url), 404, code="not_found")


def test_a_page_address_that_matches_nothing_stays_an_html_page(root):
    client = Client()
    client.force_login(root)
    response = client.get("/nothing-here/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.governance.crash_urls")
def test_a_server_error_under_the_api_is_a_500_in_the_apis_shape(db):
    client = Client(raise_request_exception=False)
    refused(client.get("/api/v1/crash/"), 500, code="server_error")
    page = client.get("/crash/")
    assert page.status_code == 500 and not page["Content-Type"].startswith("application/json")


# Paging: a size out of range is refused, not clamped.


def test_a_page_size_out_of_range_is_a_400_naming_page_size_on_every_list(client, world):
    for method, path in PAGED:
        needs = PAGED_NEEDS[method, path]
        for size in ("0", "-1", "abc", "501", "", "1e2", "%205"):
            refused(client.generic(method, f"{url_of(path, world)}?page_size={size}{needs}"), 400, field="page_size")
        for size in ("1", "500"):
            assert client.generic(method, f"{url_of(path, world)}?page_size={size}{needs}").status_code == 200, path


# Unknown and read-only fields: refused alike by every input serializer, each named.


@pytest.mark.parametrize(("method", "path"), [case for case in WITH_BODY if case[1] not in DIALECTS],
                         ids=ids([case for case in WITH_BODY if case[1] not in DIALECTS]))
def test_an_unknown_field_is_a_400_naming_it(client, world, method, path):
    before = written()
    response = send(client, method, url_of(path, world), {"colour": "blue", "sizee": 3})
    if path in DOCUMENTS:
        refused(response, 400, field="file")
    else:
        errors = refused(response, 400, field="colour", code="unknown_field")
        assert any(error["field"] == "sizee" for error in errors)
    assert written() == before


def test_a_read_only_field_is_a_400_naming_it_on_every_endpoint(client, world):
    before = written()
    for method, path, name in READ_ONLY:
        refused(send(client, method, url_of(path, world), {name: "2024-01-01T00:00:00Z"}), 400, field=name,
                code="read_only")
    assert written() == before


def test_the_read_only_fields_checked_include_ids_and_timestamps():
    assert {(path, name) for _, path, name in READ_ONLY} >= {("/api/v1/cis/{id}/", "id"),
                                                            ("/api/v1/cis/{id}/", "created_at")}


def test_flaggers_webhook_takes_its_question_from_metadata_carrying_more_than_the_question(pipeline):
    token = api_token_create(actor=pipeline, owner=pipeline, name="flagger").secret
    response = APIClient().post("/api/v1/gates/flagger/", {"name": "podinfo", "phase": "Progressing", "metadata": {
        "token": token, "change": "CHG9999999", "service": "payments-api", "environment": "prod",
        "artifact": "sha256:" + "a" * 64, "canary": "podinfo"}}, format="json")
    # The question was read (its service is unknown here); Flagger's own keys were not refused.
    refused(response, 400, field="service", code="does_not_exist")


def test_patching_a_policy_with_a_requirement_that_names_no_role_is_a_400_naming_it(client, world):
    policy = ApprovalPolicy.objects.order_by("pk").first()
    response = client.patch(f"/api/v1/policies/{policy.pk}/", {"requirements": [{"count": 2}]}, format="json")
    refused(response, 400, field="requirements[0].role", code="required")


# Cheap refusals: permission before costly input, lists capped and resolved in one query.


def names(count: int) -> list[str]:
    return [f"ci-number-{index:06d}" for index in range(count)]


def test_eighty_thousand_ci_names_are_refused_fast_naming_the_list_and_its_maximum(api, requester,
                                                                                 django_assert_max_num_queries):
    client = api.as_user(requester)
    body = json.dumps({"title": "Everything", "affected_cis": names(80_000)})
    assert len(body) > 1_300_000
    before = ChangeRequest.objects.count()
    started = time.monotonic()
    with django_assert_max_num_queries(12):
        response = client.post("/api/v1/changes/", body, content_type="application/json")
    assert time.monotonic() - started < 5  # far inside a worker timeout; measured about 0.1 s
    errors = refused(response, 400, field="affected_cis", code="too_many")
    assert f"at most {MAX_NAMES_PER_LIST}" in errors[0]["message"]
    assert ChangeRequest.objects.count() == before


@pytest.mark.parametrize("persona", ["auditor", "pipeline"])
def test_a_caller_who_may_not_raise_changes_is_refused_before_the_names_are_read(request, api, persona,
                                                                                django_assert_max_num_queries):
    client = api.as_user(request.getfixturevalue(persona))
    body = json.dumps({"title": "Everything", "affected_cis": names(80_000)})
    started = time.monotonic()
    with django_assert_max_num_queries(12):
        response = client.post("/api/v1/changes/", body, content_type="application/json")
    assert time.monotonic() - started < 5  # far inside a worker timeout; measured about 0.1 s
    refused(response, 403)


def test_eighty_thousand_names_patched_onto_a_change_are_refused_fast(api, requester, django_assert_max_num_queries):
    from tests.factories import make_change
    change = make_change(requester)
    started = time.monotonic()
    with django_assert_max_num_queries(25):
        response = api.as_user(requester).patch(f"/api/v1/changes/{change.number}/", json.dumps(
            {"affected_cis": names(80_000)}), content_type="application/json")
    assert time.monotonic() - started < 5  # far inside a worker timeout; measured about 0.1 s
    refused(response, 400, field="affected_cis", code="too_many")


def test_a_stranger_patching_a_change_is_refused_before_its_names_are_read(api, requester, auditor, cab_member):
    from tests.factories import make_change
    change = make_change(requester)
    response = api.as_user(cab_member).patch(f"/api/v1/changes/{change.number}/", {"affected_cis": names(150)},
                                             format="json")
    refused(response, 403)


def test_the_cis_of_a_change_are_found_in_one_query_however_many_are_named(api, requester, team,
                                                                         django_assert_num_queries):
    for name in names(MAX_NAMES_PER_LIST):
        make_ci(name, team=team)
    client = api.as_user(requester)

    def cost(count: int) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/api/v1/changes/", {"title": "Many", "affected_cis": names(count)}, format="json")
        assert response.status_code == 201, response.content
        assert len(response.json()["affected_cis"]) == count
        return len(queries)

    cost(1)  # the first request fills the caches of content types and permissions
    assert cost(2) == cost(MAX_NAMES_PER_LIST)


def test_unknown_ci_names_are_listed_in_one_refusal(client, world):
    response = client.post("/api/v1/changes/", {"title": "x", "affected_cis": ["payments-api", "nope-1", "NOPE-2"]},
                           format="json")
    errors = refused(response, 400, field="affected_cis", code="does_not_exist")
    assert "'nope-1', 'NOPE-2'" in errors[0]["message"]


@pytest.mark.parametrize(("path", "field"), [("/api/v1/freezes/", "cis"), ("/api/v1/freezes/", "environments"),
                                             ("/api/v1/lockdowns/", "cis"), ("/api/v1/policies/", "environments")])
def test_every_list_of_names_is_capped_alike(client, world, path, field):
    refused(client.post(path, {field: names(201)}, format="json"), 400, field=field, code="too_many")
