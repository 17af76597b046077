"""The connectors against their stand-ins on loopback: the configuration refused by connector and field; ServiceNow's
change_request created once per change (looked up by correlation_id) and updated on its sys_id, each update applied
once; the state mapping; what is retried (429 and 503 when Retry-After says, other 5xx, a remote that is down) and
what is not (a 4xx); credentials never in a result; Jira's request created, found again and transitioned once; the
webhook signed so its receiver verifies it; incidents read by time of update."""

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance.itsm import webhook_out
from governance.itsm.config import connectors_from, connectors_load
from governance.itsm.connectors import connector_client, connectors_for_team, payload_for
from governance.itsm.remote import RemoteRefused, retry_after
from governance.itsm.servicenow import ServiceNowClient
from governance.models import ChangeRequest, ChangeStatus, ChangeStatusChange, ItsmRecord, OutboxMessage
from tests.factories import make_change, make_user
from tests.governance.itsm.conftest import JIRA_TRANSITIONS, jira_entry, servicenow_entry

S = ChangeStatus


def message(payload: dict, key: str, *, connector: str = "servicenow", sequence: int = 1,
            event: str = "status") -> OutboxMessage:
    return OutboxMessage(connector=connector, sequence=sequence, event=event, payload=payload,
                         idempotency_key=key)


def change(number: str = "CHG0000123", status: str = S.SUBMITTED, **fields) -> ChangeRequest:
    return ChangeRequest(number=number, title="Upgrade payments-api", status=status, change_type="normal",
                         description="Move to 4.2", implementation_plan="helm upgrade", backout_plan="helm rollback",
                         test_evidence="CI run 4711 green", **fields)


def deliver(config, payload: dict, key: str, record=None):
    return connector_client(config).deliver(message(payload, key, connector=config.name), record)


def record_of(config, result) -> ItsmRecord:
    return ItsmRecord(connector=config.name, remote_id=result.remote_id, remote_number=result.remote_number)


# The configuration


def servicenow_config(**changes) -> dict:
    return {"name": "snow", "kind": "servicenow", "url": "https://acme.service-now.com", "teams": ["payments"],
            "credentials": {"username_env": "SNOW_USER", "password_env": "SNOW_PASSWORD"}, **changes}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"kind": "remedy"}, "connector 'snow': kind must be one of servicenow, jira, webhook."),
    ({"url": "ftp://acme"}, "connector 'snow': url: url must be an http:// or https:// URL with a host."),
    ({"url": "https://admin:pw@acme.service-now.com"}, "connector 'snow': url: url must not hold credentials"),
    ({"teams": []}, "connector 'snow': teams is required"),
    ({"credentials": {"password": "hunter2"}}, "connector 'snow': credentials must be {password_env, username_env} "
                                               "or {token_env}"),
    ({"credentials": {"token_env": "not a name"}}, "connector 'snow': credentials.token_env must name an "
                                                   "environment variable"),
    ({"project": "CAB"}, "connector 'snow': unknown keys for a servicenow connector: project."),
    ({"name": "Snow Prod"}, "connector 'Snow Prod': name is required: lower-case letters"),
    ({"name": 7}, "connector #1: name is required"),
])
def test_a_bad_connector_is_refused_naming_the_connector_and_the_field(changes, expected):
    with pytest.raises(ImproperlyConfigured) as refused:
        connectors_from([servicenow_config(**changes)])
    assert expected in str(refused.value)


def test_jira_needs_its_service_desk_request_type_and_known_statuses():
    entry = {"name": "jsm", "kind": "jira", "url": "https://acme.atlassian.net", "teams": ["*"],
             "credentials": {"token_env": "JSM_TOKEN"}, "transitions": {"aproved": "21"}}
    with pytest.raises(ImproperlyConfigured) as refused:
        connectors_from([entry])
    assert "connector 'jsm': service_desk_id is required" in str(refused.value)
    assert "connector 'jsm': request_type_id is required" in str(refused.value)
    assert "connector 'jsm': transitions name unknown change statuses: aproved" in str(refused.value)


def test_two_connectors_of_one_name_and_a_file_that_is_no_list_are_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="connector 'snow': name: another connector has this name"):
        connectors_from([servicenow_config(), servicenow_config()])
    path = tmp_path / "itsm.json"
    path.write_text(json.dumps({"name": "snow"}))
    with pytest.raises(ImproperlyConfigured, match=f"ITSM_CONFIG_FILE={path}: the configuration is a JSON list"):
        connectors_load(str(path))
    path.write_text("[{")
    with pytest.raises(ImproperlyConfigured, match=f"ITSM_CONFIG_FILE={path}: not JSON"):
        connectors_load(str(path))


def test_no_file_is_no_connector_and_a_team_gets_the_connectors_naming_it_or_every_team(settings):
    assert connectors_load("") == []
    settings.ITSM_CONNECTORS = connectors_from([
        servicenow_config(), servicenow_config(name="everyone", teams=["*"]),
        servicenow_config(name="others", teams=["search"])])
    assert [config.name for config in connectors_for_team("payments")] == ["snow", "everyone"]


def test_a_connector_fixture_gives_a_worker_started_after_it_the_same_connectors(servicenow_connector, settings):
    assert connectors_load(os.environ["ITSM_CONFIG_FILE"]) == settings.ITSM_CONNECTORS == [servicenow_connector]
    assert os.environ[servicenow_connector.credentials["password_env"]]


# ServiceNow


def test_a_change_is_created_with_its_number_as_correlation_id_then_updated_on_its_sys_id(servicenow,
                                                                                          servicenow_connector):
    created = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert created.ok and created.remote_number.startswith("CHG")
    [remote] = servicenow.changes_for("CHG0000123")
    assert (remote["sys_id"], remote["number"], remote["state"]) == (created.remote_id, created.remote_number, -4)

    updated = deliver(servicenow_connector, payload_for("servicenow", change(status=S.CAB_REVIEW)),
                      "servicenow:CHG0000123:2", record_of(servicenow_connector, created))
    assert updated.ok and updated.remote_id == created.remote_id
    assert [r["state"] for r in servicenow.changes_for("CHG0000123")] == [-3]
    assert ("PATCH", f"/api/now/table/change_request/{created.remote_id}") in servicenow.requests
    assert [(w["operation"], w["state"]) for w in servicenow.writes["CHG0000123"]] == [("create", -4),
                                                                                       ("update", -3)]


def test_a_second_create_for_a_change_finds_its_record_and_updates_it(servicenow, servicenow_connector):
    first = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    # The outbox lost the answer (a worker died): the next update comes without the record.
    second = deliver(servicenow_connector, payload_for("servicenow", change(status=S.CAB_REVIEW)),
                     "servicenow:CHG0000123:2")
    assert second.ok and second.remote_id == first.remote_id
    assert len(servicenow.changes_for("CHG0000123")) == 1
    assert [w["operation"] for w in servicenow.writes["CHG0000123"]] == ["create", "update"]


def test_an_update_delivered_again_is_not_applied_again(servicenow, servicenow_connector):
    payload = payload_for("servicenow", change())
    first = deliver(servicenow_connector, payload, "servicenow:CHG0000123:1")
    again = deliver(servicenow_connector, payload, "servicenow:CHG0000123:1")
    again_with_record = deliver(servicenow_connector, payload, "servicenow:CHG0000123:1",
                                record_of(servicenow_connector, first))
    assert again.ok and again_with_record.ok
    assert again.remote_id == again_with_record.remote_id == first.remote_id
    assert "already has update servicenow:CHG0000123:1" in again.detail
    assert servicenow.applied_keys("CHG0000123") == ["servicenow:CHG0000123:1"]


def test_a_record_deleted_in_servicenow_is_made_again(servicenow, servicenow_connector):
    first = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    del servicenow.tables["change_request"][first.remote_id]
    again = deliver(servicenow_connector, payload_for("servicenow", change(status=S.CAB_REVIEW)),
                    "servicenow:CHG0000123:2", record_of(servicenow_connector, first))
    assert again.ok and again.remote_id != first.remote_id
    assert [r["state"] for r in servicenow.changes_for("CHG0000123")] == [-3]


@pytest.mark.parametrize(("status", "state", "approval"), [
    (S.DRAFT, -5, "not requested"), (S.SUBMITTED, -4, "not requested"), (S.ASSESSED, -4, "not requested"),
    (S.CAB_REVIEW, -3, "requested"), (S.APPROVED, -2, "approved"), (S.SCHEDULED, -2, "approved"),
    (S.IMPLEMENTING, -1, "approved"), (S.COMPLETED, 0, "approved"), (S.FAILED, 0, "approved"),
    (S.ROLLED_BACK, 0, "approved"), (S.REJECTED, 4, "rejected"), (S.CANCELLED, 4, "not requested"),
])
def test_each_status_maps_to_servicenow_state_and_approval(status, state, approval):
    payload = payload_for("servicenow", change(status=status))
    assert (payload["state"], payload["approval"]) == (state, approval)


def test_every_status_has_a_servicenow_state():
    from governance.itsm.servicenow import STATE

    assert set(STATE) == set(ChangeStatus.values)


@pytest.mark.parametrize(("status", "close_code"), [
    (S.COMPLETED, "successful"), (S.FAILED, "unsuccessful"), (S.ROLLED_BACK, "unsuccessful"),
    (S.IMPLEMENTING, None)])
def test_an_ended_change_carries_its_close_code(status, close_code):
    assert payload_for("servicenow", change(status=status)).get("close_code") == close_code


def test_a_closed_change_keeps_the_close_code_of_how_it_ended(db):
    requester = make_user("rita", "requester")
    closed = make_change(requester, status=S.CLOSED)
    for before, after in ((S.SCHEDULED, S.IMPLEMENTING), (S.IMPLEMENTING, S.ROLLED_BACK), (S.ROLLED_BACK, S.CLOSED)):
        ChangeStatusChange.objects.create(change=closed, from_status=before, to_status=after, actor=requester)
    payload = payload_for("servicenow", closed)
    assert (payload["state"], payload["close_code"], payload["close_notes"]) == (3, "unsuccessful", "Rolled back.")
    assert payload["correlation_id"] == closed.number
    assert payload["start_date"] == closed.planned_start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_a_429_is_retried_after_the_delay_the_remote_asks(servicenow, servicenow_connector):
    servicenow.fail_next(1, status=429, retry_after=7)
    result = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert (result.ok, result.retry, result.retry_after) == (False, True, 7.0)
    assert "answered 429" in result.detail
    assert "CHG0000123" not in servicenow.writes


def test_a_503_with_an_http_date_is_retried_when_that_date_comes(servicenow, servicenow_connector):
    servicenow.fail_next(1, status=503, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=90),
                                                                     usegmt=True))
    result = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert result.retry and 85 <= result.retry_after <= 90


def test_retry_after_is_read_as_seconds_or_a_date_and_ignored_when_neither():
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # passed already: now
    assert retry_after("soon") is None
    assert retry_after(None) is None
    assert retry_after("inf") is None


def test_a_500_is_retried_and_the_next_delivery_applies_it_once(servicenow, servicenow_connector):
    servicenow.fail_next(3, status=500)
    payload = payload_for("servicenow", change())
    results = [deliver(servicenow_connector, payload, "servicenow:CHG0000123:1") for _ in range(4)]
    assert [(r.ok, r.retry, r.retry_after) for r in results] == [(False, True, None)] * 3 + [(True, False, None)]
    assert len(servicenow.writes["CHG0000123"]) == 1


def test_a_remote_that_is_down_is_retried_and_gets_the_update_when_it_is_back(servicenow, servicenow_connector):
    servicenow.down()
    down = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert (down.ok, down.retry) == (False, True)
    assert "ConnectError" in down.detail
    servicenow.up()
    assert deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1").ok


def test_a_400_is_not_retried_and_says_what_the_remote_said(servicenow, servicenow_connector):
    payload = payload_for("servicenow", change())
    result = deliver(servicenow_connector, payload | {"correlation_id": "CHG0000123^bogus"}, "servicenow:x:1")
    assert (result.ok, result.retry) == (False, False)
    assert "answered 400" in result.detail and "Invalid query term bogus" in result.detail


def test_credentials_never_appear_in_a_result(servicenow, servicenow_connector):
    servicenow.fail_next(1, status=400)
    result = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    basic = base64.b64encode(f"{servicenow.username}:{servicenow.password}".encode()).decode()
    assert servicenow.authorizations == [f"Basic {basic}"]
    assert "Authorization: Basic [redacted]" in result.detail
    assert servicenow.password not in result.detail and basic not in result.detail


def test_the_basic_header_is_redacted_whatever_order_the_file_names_the_credentials(servicenow, itsm_configure):
    [config] = itsm_configure(servicenow_entry(servicenow) | {"credentials": {
        "password_env": "ITSM_TEST_SERVICENOW_PASSWORD", "username_env": "ITSM_TEST_SERVICENOW_USER"}},
        env={"ITSM_TEST_SERVICENOW_USER": servicenow.username, "ITSM_TEST_SERVICENOW_PASSWORD": servicenow.password})
    servicenow.fail_next(1, status=403)
    result = deliver(config, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert "Authorization: Basic [redacted]" in result.detail


def test_a_wrong_password_is_refused_without_being_shown(servicenow, servicenow_connector, monkeypatch):
    monkeypatch.setenv("ITSM_TEST_SERVICENOW_PASSWORD", "wrong-password-31c7")
    result = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert (result.ok, result.retry) == (False, False)
    assert "answered 401" in result.detail and "User Not Authenticated" in result.detail
    assert "wrong-password-31c7" not in result.detail and servicenow.records() == []


def test_a_missing_credential_names_the_variable_not_a_value(servicenow_connector, monkeypatch):
    monkeypatch.delenv("ITSM_TEST_SERVICENOW_PASSWORD")
    result = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert (result.ok, result.retry) == (False, False)
    assert "ITSM_TEST_SERVICENOW_PASSWORD" in result.detail


def test_a_credential_may_come_from_a_secrets_file_named_by_its_variable_and_file(servicenow, servicenow_connector,
                                                                                  monkeypatch, tmp_path):
    # As Docker and Kubernetes mount secrets: ITSM_TEST_SERVICENOW_PASSWORD_FILE names the file holding the password.
    secret = tmp_path / "servicenow-password"
    secret.write_text(servicenow.password + "\n")
    monkeypatch.delenv("ITSM_TEST_SERVICENOW_PASSWORD")
    monkeypatch.setenv("ITSM_TEST_SERVICENOW_PASSWORD_FILE", str(secret))
    created = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:1")
    assert created.ok, created.detail
    basic = base64.b64encode(f"{servicenow.username}:{servicenow.password}".encode()).decode()
    assert set(servicenow.authorizations) == {f"Basic {basic}"}
    servicenow.fail_next(1, status=400)  # and it is kept out of what a refusal says, as a variable's is
    refused = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:2",
                      record_of(servicenow_connector, created))
    assert "Basic [redacted]" in refused.detail and basic not in refused.detail
    secret.unlink()
    missing = deliver(servicenow_connector, payload_for("servicenow", change()), "servicenow:CHG0000123:3",
                      record_of(servicenow_connector, created))
    assert (missing.ok, missing.retry) == (False, False)
    assert "ITSM_TEST_SERVICENOW_PASSWORD_FILE" in missing.detail and servicenow.password not in missing.detail


def test_incidents_are_read_by_time_of_update(servicenow, servicenow_connector):
    old = servicenow.add_incident(short_description="Old outage", priority="2")
    servicenow.tables["incident"][old["sys_id"]]["sys_updated_on"] = "2020-01-01 00:00:00"
    recent = servicenow.add_incident(short_description="Checkout errors", priority="1", cmdb_ci="payments-api")
    found = ServiceNowClient(servicenow_connector).incidents_since(datetime.now(UTC) - timedelta(minutes=5))
    assert [(i["sys_id"], i["number"], i["short_description"]) for i in found] == [
        (recent["sys_id"], recent["number"], "Checkout errors")]
    assert len(ServiceNowClient(servicenow_connector).incidents_since(datetime(2019, 1, 1, tzinfo=UTC))) == 2


def test_incidents_that_cannot_be_read_raise_with_whether_to_retry(servicenow, servicenow_connector):
    servicenow.fail_next(1, status=503, retry_after=30)
    with pytest.raises(RemoteRefused) as refused:
        ServiceNowClient(servicenow_connector).incidents_since(datetime.now(UTC))
    assert (refused.value.result.retry, refused.value.result.retry_after) == (True, 30.0)


# Jira Service Management


def test_a_jira_request_is_created_then_transitioned_once_per_update(jira, jira_connector):
    created = deliver(jira_connector, payload_for("jira", change(status=S.SUBMITTED)), "jira:CHG0000123:1")
    assert created.ok and created.remote_number == "CAB-1"
    [request] = jira.requests_for("CHG0000123")
    assert request["summary"] == "CHG0000123: Upgrade payments-api"

    record = record_of(jira_connector, created)
    moved = deliver(jira_connector, payload_for("jira", change(status=S.CAB_REVIEW)), "jira:CHG0000123:2", record)
    again = deliver(jira_connector, payload_for("jira", change(status=S.CAB_REVIEW)), "jira:CHG0000123:2", record)
    assert moved.ok and again.ok and "already has update jira:CHG0000123:2" in again.detail
    assert [(w["operation"], w.get("transition")) for w in jira.writes["CHG0000123"]] == [
        ("create", None), ("transition", JIRA_TRANSITIONS["cab_review"])]
    assert jira.requests_for("CHG0000123")[0]["status"] == "Waiting for approval"
    assert jira.applied_keys("CHG0000123") == ["jira:CHG0000123:2"]


def test_an_edit_of_a_change_in_review_moves_no_jira_request(jira, jira_connector):
    created = deliver(jira_connector, payload_for("jira", change(status=S.SUBMITTED)), "jira:CHG0000123:1")
    record = record_of(jira_connector, created)
    deliver(jira_connector, payload_for("jira", change(status=S.CAB_REVIEW)), "jira:CHG0000123:2", record)
    edit = message(payload_for("jira", change(status=S.CAB_REVIEW)), "jira:CHG0000123:3",
                   connector=jira_connector.name, sequence=3, event="updated")
    edited = connector_client(jira_connector).deliver(edit, record)
    assert edited.ok and "updated, still cab_review" in edited.detail  # Jira would refuse the same transition
    assert [w["operation"] for w in jira.writes["CHG0000123"]] == ["create", "transition"]


def test_a_jira_create_sent_again_finds_the_request_it_made(jira, jira_connector):
    first = deliver(jira_connector, payload_for("jira", change(status=S.CAB_REVIEW)), "jira:CHG0000123:1")
    again = deliver(jira_connector, payload_for("jira", change(status=S.CAB_REVIEW)), "jira:CHG0000123:1")
    other = deliver(jira_connector, payload_for("jira", change(number="CHG0000124")), "jira:CHG0000124:1")
    assert first.remote_id == again.remote_id != other.remote_id
    assert len(jira.requests_for("CHG0000123")) == 1
    assert [w["operation"] for w in jira.writes["CHG0000123"]] == ["create", "transition"]


def test_a_refused_jira_transition_is_not_retried(jira, jira_connector, itsm_configure):
    created = deliver(jira_connector, payload_for("jira", change(status=S.SUBMITTED)), "jira:CHG0000123:1")
    [config] = itsm_configure(jira_entry(jira) | {"transitions": {"approved": "99"}})
    result = deliver(config, payload_for("jira", change(status=S.APPROVED)), "jira:CHG0000123:2",
                     record_of(config, created))
    assert (result.ok, result.retry) == (False, False)
    assert "Transition 99 is not valid" in result.detail


def test_jira_429_is_retried_after_the_delay_asked(jira, jira_connector):
    jira.fail_next(1, status=429, retry_after="3")
    result = deliver(jira_connector, payload_for("jira", change()), "jira:CHG0000123:1")
    assert (result.ok, result.retry, result.retry_after) == (False, True, 3.0)
    assert "CHG0000123" not in jira.writes


def test_a_jira_token_is_sent_as_bearer_and_never_shown(jira, jira_connector):
    jira.fail_next(1, status=400)
    result = deliver(jira_connector, payload_for("jira", change()), "jira:CHG0000123:1")
    assert jira.authorizations == [f"Bearer {jira.token}"]
    assert jira.token not in result.detail


# The generic webhook


def test_the_webhook_is_signed_so_the_receiver_verifies_it_and_applies_each_key_once(webhook_receiver,
                                                                                   webhook_connector):
    payload = payload_for("webhook", change())
    first = deliver(webhook_connector, payload, "webhook:CHG0000123:1")
    again = deliver(webhook_connector, payload, "webhook:CHG0000123:1")
    assert first.ok and again.ok
    assert [(m["idempotency_key"], m["change"]["change"]) for m in webhook_receiver.applied] == [
        ("webhook:CHG0000123:1", "CHG0000123")]
    assert webhook_receiver.duplicates == 1
    assert webhook_receiver.requests == [("POST", "/changeboard/hook")] * 2


def test_a_webhook_signed_with_another_secret_is_refused_and_not_retried(webhook_receiver, webhook_connector,
                                                                        monkeypatch):
    monkeypatch.setenv("ITSM_TEST_WEBHOOK_SECRET", "not-the-shared-secret")
    result = deliver(webhook_connector, payload_for("webhook", change()), "webhook:CHG0000123:1")
    assert (result.ok, result.retry) == (False, False)
    assert webhook_receiver.refused == ["signature"] and webhook_receiver.applied == []
    assert "not-the-shared-secret" not in result.detail


def test_a_webhook_from_long_ago_is_refused_by_the_receiver(webhook_receiver, webhook_connector, monkeypatch):
    monkeypatch.setattr(webhook_out, "time", SimpleNamespace(time=lambda: 1_000_000_000.0))
    result = deliver(webhook_connector, payload_for("webhook", change()), "webhook:CHG0000123:1")
    assert result.ok is False
    assert webhook_receiver.refused == ["timestamp"]
