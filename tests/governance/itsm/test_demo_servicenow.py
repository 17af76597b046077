"""The demo's ServiceNow, as `make run` starts it and points a connector at it: the connector's file loads, the
stand-in keeps its clients' connections alive (and closes them when it goes down), and with a real Celery worker the
demo's changes appear there and follow their moves, the connectors page shows them synced, and the incidents it
holds come in with the demo's production deployment ranked among their suspects."""

import io
import os
import subprocess
import time

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from cmdb.demo import TEAMS
from governance import devstack
from governance.changes.services import change_request_transition
from governance.itsm.config import connectors_load
from governance.itsm.demo_servicenow import DEMO_INCIDENTS, PASSWORD_ENV, USERNAME_ENV, ServiceNowStandIn
from governance.itsm.tasks import itsm_incidents_pull
from governance.models import ChangeRequest, ChangeStatus, Incident, OutboxMessage
from tests.governance.deployments.world import wait_for
from tests.governance.itsm.outbox_world import all_delivered


def test_the_connector_file_the_stack_writes_loads_and_names_its_credentials_never_holds_them(tmp_path):
    env = devstack.servicenow_connector("127.0.0.1:18001", tmp_path / "itsm-connectors.json")
    [connector] = connectors_load(env["ITSM_CONFIG_FILE"])
    assert (connector.name, connector.kind, connector.url) == ("servicenow", "servicenow", "http://127.0.0.1:18001")
    assert list(connector.teams) == [slug for _, slug in TEAMS]  # the demo teams, whose changes go there
    assert connector.credentials == {"username_env": USERNAME_ENV, "password_env": PASSWORD_ENV}
    assert env[PASSWORD_ENV] not in (tmp_path / "itsm-connectors.json").read_text()
    again = devstack.servicenow_connector("127.0.0.1:18001", tmp_path / "itsm-connectors.json")
    assert len(env[PASSWORD_ENV]) >= 20 and again[PASSWORD_ENV] != env[PASSWORD_ENV]  # made for each run


def test_the_stack_starts_the_stand_in_first_and_its_banner_says_where_it_is(tmp_path):
    env = {**devstack.stack_env("postgres://postgres@%2Fsocket/changeboard", "redis+socket:///r.socket", 8123),
           **devstack.servicenow_connector("127.0.0.1:18001", tmp_path / "itsm-connectors.json")}
    commands = devstack.service_commands(8123, env, servicenow="127.0.0.1:18001")
    assert next(iter(commands)) == devstack.SERVICENOW
    assert commands[devstack.SERVICENOW][-2:] == ["serve", "127.0.0.1:18001"]
    assert devstack.SERVICENOW not in devstack.service_commands(8123, env)
    [line] = [line for line in devstack.banner(8123, env, "", "127.0.0.1:18001") if "ServiceNow" in line]
    assert "http://127.0.0.1:18001/api/now/table/change_request" in line and env[PASSWORD_ENV] in line
    assert "http://127.0.0.1:8123/itsm/connectors/" in line
    assert not [line for line in devstack.banner(8123, env) if "ServiceNow" in line]


def test_a_client_keeps_its_connection_and_a_stand_in_going_down_closes_it():
    with ServiceNowStandIn() as standin, httpx.Client(auth=(standin.username, standin.password)) as client:
        for _ in range(3):
            answer = client.get(f"{standin.url}/api/now/table/incident")
            assert (answer.status_code, answer.http_version) == (200, "HTTP/1.1")
        assert len(standin._connections) == 1  # one connection answered the three
        standin.down()
        with pytest.raises(httpx.ConnectError):
            client.get(f"{standin.url}/api/now/table/incident")
        standin.up()
        assert client.get(f"{standin.url}/api/now/table/incident").status_code == 200


@pytest.fixture
def demo_servicenow(tmp_path, monkeypatch, settings):
    """The demo's ServiceNow started as `make run` starts it, and the connector's file and credentials in this
    process's environment (for the worker started after it) and settings."""
    address = devstack.free_loopback_addresses(1)[0]
    env = devstack.servicenow_connector(address, tmp_path / "itsm-connectors.json")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.ITSM_CONNECTORS = connectors_load(env["ITSM_CONFIG_FILE"])
    process = subprocess.Popen(devstack.servicenow_command(address), cwd=devstack.BASE_DIR, env=dict(os.environ))
    port = int(address.rsplit(":", 1)[1])
    deadline = time.monotonic() + 20
    while not devstack.loopback_listens(port):
        assert process.poll() is None and time.monotonic() < deadline, "the demo's ServiceNow did not start"
        time.sleep(0.1)
    yield httpx.Client(base_url=f"http://{address}", auth=(env[USERNAME_ENV], env[PASSWORD_ENV]))
    process.terminate()
    assert process.wait(timeout=10) == 0


def held_for(servicenow: httpx.Client, number: str) -> list[dict]:
    """The change_request records the stand-in holds for a change, read over its Table API."""
    answer = servicenow.get("/api/now/table/change_request", params={"sysparm_query": f"correlation_id={number}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


@pytest.mark.django_db(transaction=True)
def test_the_demo_changes_are_mirrored_to_the_demo_servicenow_and_its_incidents_come_in_with_suspects(
        client, demo_servicenow, migration_data, celery_worker_process):
    call_command("seed_demo", password="pw-for-tests", stdout=io.StringIO())
    implementing = ChangeRequest.objects.get(title="Deploy notifications 3.1")
    wait_for("the demo's changes to be mirrored", lambda: all_delivered(ChangeRequest.objects.all()), timeout=120)
    [record] = held_for(demo_servicenow, implementing.number)
    assert str(record["state"]) == "-1"  # Implement

    change_request_transition(actor=implementing.implementer, change=implementing, target=ChangeStatus.COMPLETED)
    wait_for("the move to be mirrored", lambda: all_delivered([implementing]), timeout=60)
    [record] = held_for(demo_servicenow, implementing.number)
    assert (str(record["state"]), record["close_code"]) == ("0", "successful")
    assert record["correlation_display"] == (OutboxMessage.objects.filter(change=implementing)
                                             .order_by("-sequence").first().idempotency_key)

    client.force_login(get_user_model().objects.get(username="admin"))
    page = client.get("/itsm/connectors/").content.decode()
    assert 'data-connector="servicenow"' in page and "0 updates not yet delivered" in page
    assert 'class="last-sync">never' not in page and "None." in page  # delivered lately, nothing failed

    itsm_incidents_pull.delay()  # beat's job, every minute in `make run`
    wait_for("the demo's incidents", lambda: Incident.objects.count() == len(DEMO_INCIDENTS), timeout=60)
    for demo in DEMO_INCIDENTS:
        incident = Incident.objects.get(title=demo.title)
        [suspect] = incident.suspects.select_related("deployment__service", "deployment__environment")
        assert (suspect.deployment.service.name, suspect.deployment.environment.name) == ("payments-api", "prod")
    page = client.get("/itsm/incidents/").content.decode()
    assert all(demo.title in page for demo in DEMO_INCIDENTS)
