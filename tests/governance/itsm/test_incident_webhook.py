"""The incident webhook: a signed, fresh, first delivery is taken; a wrong signature, a stale timestamp and a replay
are refused with a 4xx and recorded in the ledger; a malformed incident is a 400 naming the field and writes nothing;
and the same incident by webhook and by pull is one record."""

import json
import time

import pytest

from governance.itsm.incidents import incidents_pull
from governance.itsm.tasks import itsm_incidents_pull
from governance.itsm.webhook_out import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from governance.models.itsm import Incident, WebhookReceipt
from tests.factories import sealed
from tests.governance.deployments.world import wait_for
from tests.governance.itsm import incident_world
from tests.governance.itsm.incident_world import servicenow_incident

estate = incident_world.estate  # the fixture

SECRET = "incident-webhook-secret-51c7"
URL = "/api/v1/incidents/webhook/servicenow/"


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("ITSM_WEBHOOK_SECRET_SERVICENOW", SECRET)
    return SECRET


def signed(record, *, secret: str = SECRET, at: float | None = None) -> dict:
    body = json.dumps(record).encode()
    stamp = str(int(time.time() if at is None else at))
    return {"data": body, "content_type": "application/json",
            "headers": {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(secret, stamp, body)}}


def post(client, url: str = URL, **request):
    return client.post(url, request["data"], content_type=request["content_type"], headers=request["headers"])


def refusals(code: str) -> list:
    return [e for e in sealed(action="incident_webhook_refused") if e.context["code"] == code]


def test_a_signed_incident_is_taken_and_ranked(client, estate, secret):
    response = post(client, **signed(servicenow_incident()))
    assert response.status_code == 202, response.content
    incident = Incident.objects.get()
    assert response.json() == {"id": incident.pk, "source": "servicenow", "external_id": "a" * 32,
                               "number": "INC0010001"}
    assert WebhookReceipt.objects.filter(sender="servicenow").count() == 1
    [created] = sealed(object_type="governance.incident", action="create")
    assert (created.actor_kind, created.actor_name) == ("system", "servicenow webhook")


def test_a_wrong_signature_is_refused_and_recorded(client, estate, secret):
    response = post(client, **signed(servicenow_incident(), secret="not-the-secret"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == SIGNATURE_HEADER
    assert not Incident.objects.exists()
    assert refusals("bad_signature")[0].context["source"] == "servicenow"


def test_a_body_changed_after_signing_is_refused(client, estate, secret):
    request = signed(servicenow_incident())
    request["data"] = request["data"].replace(b"Checkout", b"Checkin")
    assert post(client, **request).status_code == 401
    assert not Incident.objects.exists()


@pytest.mark.parametrize("age", [301, -301, 3600])
def test_a_stale_timestamp_is_refused_and_recorded(client, estate, secret, age):
    response = post(client, **signed(servicenow_incident(), at=time.time() - age))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "stale_timestamp"
    assert not Incident.objects.exists()
    assert len(refusals("stale_timestamp")) == 1


def test_a_replayed_delivery_is_refused_and_recorded(client, estate, secret):
    request = signed(servicenow_incident())
    assert post(client, **request).status_code == 202
    replay = post(client, **request)
    assert replay.status_code == 409
    assert replay.json()["errors"][0]["code"] == "replayed"
    assert len(refusals("replayed")) == 1
    assert Incident.objects.count() == 1


def test_a_source_without_a_secret_is_refused(client, estate, secret):
    response = post(client, url="/api/v1/incidents/webhook/nobody/", **signed(servicenow_incident()))
    assert response.status_code == 401
    assert refusals("unknown_source")


@pytest.mark.parametrize(("change", "field"), [
    ({"priority": "9 - Never"}, "priority"), ({"opened_at": "noon"}, "opened_at"),
    ({"cmdb_ci": "no-such-ci"}, "cmdb_ci"), ({"short_description": ""}, "short_description"),
])
def test_a_malformed_incident_is_a_400_naming_the_field_and_writes_nothing(client, estate, secret, change, field):
    response = post(client, **signed(servicenow_incident(**change)))
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Incident.objects.exists()
    assert not WebhookReceipt.objects.exists()


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_no_incident_is_a_400_never_a_500(client, estate, secret, body):
    stamp = str(int(time.time()))
    response = client.post(URL, body, content_type="application/json",
                           headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(SECRET, stamp, body)})
    assert response.status_code == 400
    assert not Incident.objects.exists()


@pytest.mark.parametrize("field", ["sys_id", "number", "short_description", "state", "cmdb_ci", "opened_at"])
@pytest.mark.parametrize(("bad", "code"), [("x\x00y", "nul_character"), ("\udc00", "lone_surrogate")])
def test_text_postgresql_cannot_hold_is_a_400_naming_the_field_and_writes_nothing(client, estate, secret, field, bad,
                                                                                  code):
    response = post(client, **signed(servicenow_incident(**{field: bad})))
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == (field, code)
    assert not Incident.objects.exists()
    assert not WebhookReceipt.objects.exists()


def test_json_nested_past_the_limit_is_a_400_too_deep_and_writes_nothing(client, estate, secret):
    body = b"[" * 10_000
    stamp = str(int(time.time()))
    response = client.post(URL, body, content_type="application/json",
                           headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(SECRET, stamp, body)})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "too_deep"
    assert not Incident.objects.exists()


def test_only_post_is_served_and_the_body_is_bounded(client, estate, secret):
    assert client.get(URL).status_code == 405
    huge = signed(servicenow_incident(description="x" * 70_000))
    assert post(client, **huge).status_code == 413
    assert not Incident.objects.exists()


def test_the_same_incident_by_webhook_and_by_pull_is_one_record(client, estate, servicenow, servicenow_connector,
                                                              monkeypatch):
    monkeypatch.setenv("ITSM_WEBHOOK_SECRET_SERVICENOW", SECRET)
    held = servicenow.add_incident(**{k: v for k, v in servicenow_incident().items()
                                      if k not in ("sys_id", "number", "sys_updated_on")})
    by_webhook = {**held, "state": "1"}
    assert post(client, **signed(by_webhook)).status_code == 202
    servicenow.tables["incident"][held["sys_id"]].update(state="6", sys_updated_on="2099-01-01 00:00:00")
    assert incidents_pull() == {"servicenow": (1, 0)}
    incident = Incident.objects.get()
    assert (incident.source, incident.external_id, incident.number, incident.state) == (
        "servicenow", held["sys_id"], held["number"], "6")


@pytest.mark.django_db(transaction=True)
def test_the_beat_job_pulls_incidents_through_a_real_worker_and_a_later_pull_updates_the_same_one(
        estate, servicenow, servicenow_connector, celery_worker_process):
    held = servicenow.add_incident(**{k: v for k, v in servicenow_incident().items()
                                      if k not in ("sys_id", "number", "sys_updated_on")})
    itsm_incidents_pull.delay()
    wait_for("the pulled incident", lambda: Incident.objects.filter(external_id=held["sys_id"]).exists(), 30)
    with servicenow.lock:
        servicenow.tables["incident"][held["sys_id"]].update(state="6", sys_updated_on="2099-01-01 00:00:00")
    itsm_incidents_pull.delay()
    wait_for("the update pulled", lambda: Incident.objects.filter(state="6").exists(), 30)
    incident = Incident.objects.get()
    assert (incident.source, incident.number, incident.priority) == ("servicenow", held["number"], 1)
