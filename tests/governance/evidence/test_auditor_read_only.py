"""The auditor reads everything and changes nothing: every write the auditor could try is refused, enumerated, not
sampled. Each URL pattern of the site (its path parameters filled with real records), each operation of the
published API schema, and each model of the admin (add, change, delete and every action) is sent each unsafe method
by a signed-in auditor, who is even let into the admin to read: the answer is a 403, or a 405 where the endpoint
takes no such method (never a redirect to a login: the auditor is signed in), and the database holds what it held.

The auditor's own work and own session are the only writes allowed, each listed with why in
governance.evidence.read_only.AUDITOR_WRITES, the rule this test holds the site to."""

import re
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from cmdb.models import Relationship
from governance.evidence.read_only import AUDITOR_WRITES
from governance.models import AuditCapture, AuditCheckpoint, AuditEvent
from governance.models.changes import ApprovalPolicy
from governance.roles import Role
from releases.models import TrustedKey
from tests.factories import make_user
from tests.governance.evidence.access_world import build_read_only_world

pytestmark = pytest.mark.django_db

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
REFUSED = (403, 405)

# What answers every method alike and writes nothing: only that nothing is written is asserted of these.
ANSWERS_ANY_METHOD = {
    "health": "the load balancer's health check: reads whether the database and broker answer",
    "favicon": "a redirect to the static icon",
}
# Events a refused request leaves in the ledger: the refusal itself is evidence, not a change.
REFUSAL_EVENTS = {"permission_denied"}
# What a request as the signed-in auditor may write whatever it is: the auditor's own session.
OWN_SESSION = {"django_session"}


@pytest.fixture
def auditor(db):
    """An auditor let into the admin to read it, the hardest case for it to refuse writes in."""
    return make_user("auditor", Role.AUDITOR, is_staff=True)


@pytest.fixture
def world(admin_user, auditor):
    return build_read_only_world(admin_user, auditor)


@pytest.fixture
def browser(auditor) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


@pytest.fixture
def api_client(auditor) -> APIClient:
    """A session, not a token: a token's use is itself recorded, which would hide nothing but blur the count."""
    client = APIClient()
    client.force_login(auditor)
    return client


def patterns(resolver: URLResolver | None = None, prefix: str = "", namespace: str = "") -> Iterator[tuple]:
    """(route, name with its namespace) of every URL pattern of the site."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else (
                entry.namespace or namespace)
            yield from patterns(entry, prefix + str(entry.pattern), inner or "")
        else:
            assert isinstance(entry, URLPattern)
            name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or "")
            yield prefix + str(entry.pattern), name


PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def record_of(route: str, world: dict):
    """The record a route's `pk` or `object_id` names, by the route's resource; None for a resource the world
    does not hold."""
    admin_model = re.match(r"admin/(\w+)/(\w+)/", route)
    if admin_model:
        for model in admin.site._registry:
            if (model._meta.app_label, model._meta.model_name) == admin_model.groups():
                return model._default_manager.order_by("pk").first()
    resources = {
        "tokens/": lambda: world["token"], "cab/meetings/": lambda: world["meeting"],
        "calendar/feeds/": lambda: world["feed"], "calendar/lockdowns/": lambda: world["lockdown"],
        "releases/services/": lambda: world["service"], "deployments/plans/": lambda: world["plan"],
        "cmdb/cis/": lambda: world["service"], "teams/": lambda: world["team"], "environments/": lambda: world["dev"],
        "cis/": lambda: world["service"], "relationships/": lambda: Relationship.objects.order_by("pk").first(),
        "audit/checkpoints/": lambda: AuditCheckpoint.objects.order_by("pk").first(),
        "policies/": lambda: ApprovalPolicy.objects.order_by("pk").first(),
        "standard-templates/": lambda: world["template"], "freezes/": lambda: world["freeze"],
        "maintenance-windows/": lambda: world["window"], "lockdowns/": lambda: world["lockdown"],
        "calendar-feeds/": lambda: world["feed"], "deployment-plans/": lambda: world["plan"],
        "trusted-keys/": lambda: TrustedKey.objects.order_by("pk").first(),
        "audit/evidence/bundles/": lambda: world["bundle"], "audit/bundles/": lambda: world["bundle"],
        "audit/evidence/samples/": lambda: world["sample"], "audit/samples/": lambda: world["sample"],
    }
    path = route.removeprefix("api/v1/").lstrip("^")
    for resource, record in resources.items():
        if path.startswith(resource):
            return record()
    # A route this world knows no record of gets an id that may name none: a 404 is no refusal here, so the test
    # still fails unless the write is refused before the record is looked for.
    return None


def url_of(route: str, name: str, world: dict) -> str:
    def value(match: re.Match) -> str:
        parameter = match.group(1) or match.group(2)
        if parameter == "number":
            deployment = any(part in route for part in ("deployments/", "rollouts/")) and "of-change" not in route
            return (world["deployment"] if deployment else world["approved"]).number
        fixed = {"digest": world["artifact"].digest, "seq": str(AuditEvent.objects.order_by("seq").first().seq),
                 "secret": "cbf_" + "x" * 40, "object_type": "cmdb.configurationitem",
                 "object_id": str(world["service"].pk), "key": world["note"].exception_key,
                 "app_label": "governance", "url": "nothing-here/",
                 "content_type_id": str(ContentType.objects.get_for_model(world["service"]).pk)}
        if parameter in fixed and not (parameter == "object_id" and re.match(r"admin/\w+/\w+/", route)):
            return fixed[parameter]
        record = record_of(route, world)
        return str(record.pk) if record is not None else "1"

    path = PARAMETER.sub(value, route).replace("^", "").replace("$", "")
    return "/" + path


def database_writes() -> dict[str, int]:
    """Rows inserted, updated or deleted so far in this transaction, by table (the test runs in one)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables")
        return dict(cursor.fetchall())


def what_it_wrote(send) -> list[str]:
    """Each write the request made (beyond the ledger's record of a refusal and the auditor's own session)."""
    before, last_capture = database_writes(), AuditCapture.objects.order_by("-id").values_list("id", flat=True).first()
    response = send()
    after = database_writes()
    written = [f"{table} (+{count - before.get(table, 0)})" for table, count in after.items()
               if count != before.get(table, 0) and table not in OWN_SESSION | {"governance_auditcapture"}]
    captured = AuditCapture.objects.filter(id__gt=last_capture or 0).exclude(action__in=REFUSAL_EVENTS)
    written += [f"ledger: {event.action} {event.object_type} {event.object_label}" for event in captured]
    return response, written


def send(client, method: str, url: str, *, data=None):
    if isinstance(client, APIClient):
        return client.generic(method, url, "{}" if data is None else data, content_type="application/json")
    return client.generic(method, url, "" if data is None else data,
                          content_type="application/x-www-form-urlencoded")


def problems_of(client, method: str, url: str, label: str, *, data=None, any_answer: bool = False) -> list[str]:
    response, written = what_it_wrote(lambda: send(client, method, url, data=data))
    found = []
    if response.status_code not in REFUSED and not any_answer:
        where = f" to {response['Location']}" if response.status_code in (301, 302, 303, 307, 308) else ""
        found.append(f"{method} {url} ({label}): {response.status_code}{where}")
    if written:
        found.append(f"{method} {url} ({label}) wrote {', '.join(written)}")
    return found


def test_every_url_pattern_of_the_site_refuses_every_write_of_the_auditor(world, browser, api_client):
    problems, sent = [], 0
    for route, name in patterns():
        if name in AUDITOR_WRITES:
            continue
        url = url_of(route, name, world)
        client = api_client if route.startswith("api/") else browser
        for method in UNSAFE:
            problems += problems_of(client, method, url, name or route, any_answer=name in ANSWERS_ANY_METHOD)
            sent += 1
    assert problems == [], "\n".join(problems)
    assert sent > 400  # every pattern, each method: the walk reached them all


def test_every_operation_of_the_api_schema_refuses_the_auditor(world, api_client):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    problems, sent = [], 0
    for path, operations in schema["paths"].items():
        for method in operations:
            if method.upper() not in UNSAFE:
                continue
            route = re.sub(r"\{(\w+)\}", lambda match: "<" + match.group(1) + ">", path.removeprefix("/"))
            url = url_of(route, operations[method].get("operationId", ""), world)
            if resolve(url).view_name in AUDITOR_WRITES:
                continue
            problems += problems_of(api_client, method.upper(), url, operations[method].get("operationId", ""))
            sent += 1
    assert problems == [], "\n".join(problems)
    assert sent > 40


def test_every_model_of_the_admin_refuses_the_auditors_add_change_delete_and_actions(world, browser, auditor):
    problems = []
    for model, model_admin in admin.site._registry.items():
        label = f"{model._meta.app_label}/{model._meta.model_name}"
        record = model._default_manager.order_by("pk").first()
        assert record is not None, f"the world has no {label} for the admin to show"
        base = f"/admin/{label}/"
        problems += problems_of(browser, "POST", f"{base}add/", f"add {label}")
        problems += problems_of(browser, "POST", f"{base}{record.pk}/change/", f"change {label}")
        problems += problems_of(browser, "POST", f"{base}{record.pk}/delete/", f"delete {label}", data="post=yes")
        every_action = {"delete_selected", *(getattr(action, "__name__", str(action))
                                             for action in model_admin.actions or ())}
        for action in sorted(every_action):
            problems += problems_of(browser, "POST", base, f"action {action} on {label}",
                                    data=f"action={action}&_selected_action={record.pk}&index=0")
    assert problems == [], "\n".join(problems)


def test_signing_out_is_the_auditors_own_session_and_writes_nothing_else(world, browser):
    response, written = what_it_wrote(lambda: browser.post("/logout/"))
    assert response.status_code == 302
    assert [entry for entry in written if not entry.startswith("ledger: logout ")] == []


def test_an_auditors_api_token_is_refused_at_the_door_and_the_refusal_is_in_the_ledger(world, api, auditor):
    client = api.as_user(auditor)
    token = auditor.api_tokens.get()
    response, written = what_it_wrote(lambda: client.post("/api/v1/cis/", {
        "name": "shadow-it", "type": "service", "owner_team": world["team"].slug, "criticality": 3}, format="json"))
    assert response.status_code == 403 and response.json()["errors"][0]["code"] == "permission_denied"
    assert written == []
    [refusal] = AuditCapture.objects.filter(action="permission_denied", context__path="/api/v1/cis/")
    assert refusal.actor_id == auditor.pk and refusal.token_id == token.pk


def test_the_door_stops_only_auditors(world, api, admin_user):
    response = api.as_user(admin_user).post("/api/v1/teams/", {"slug": "search", "name": "Search"}, format="json")
    assert response.status_code == 201, response.json()


def test_each_write_allowed_to_auditors_names_a_url_of_the_site():
    names = {name for _, name in patterns()}
    assert set(AUDITOR_WRITES) - names == set()
