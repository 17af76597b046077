"""The ITSM stand-ins, started for a test and stopped after it, and connectors pointed at them.

A connector fixture writes the configuration file and sets ITSM_CONFIG_FILE and the credentials' environment
variables (with monkeypatch), so a Celery worker started after it (request it after the connector fixture) reads the
same connectors as the test's own settings.ITSM_CONNECTORS."""

import json

import pytest

from governance.itsm.config import ConnectorConfig, connectors_load
from governance.itsm.demo_servicenow import ServiceNowStandIn
from tests.governance.itsm.jira_standin import JiraStandIn
from tests.governance.itsm.webhook_receiver import WebhookReceiver

SERVICENOW_USERNAME_ENV = "ITSM_TEST_SERVICENOW_USER"
SERVICENOW_PASSWORD_ENV = "ITSM_TEST_SERVICENOW_PASSWORD"
JIRA_TOKEN_ENV = "ITSM_TEST_JIRA_TOKEN"
WEBHOOK_SECRET_ENV = "ITSM_TEST_WEBHOOK_SECRET"
JIRA_TRANSITIONS = {"cab_review": "11", "approved": "21", "implementing": "31", "completed": "41",
                    "cancelled": "51"}


@pytest.fixture
def servicenow():
    with ServiceNowStandIn() as standin:
        yield standin


@pytest.fixture
def jira():
    with JiraStandIn(token="jira-standin-token-8e3a") as standin:
        yield standin


@pytest.fixture
def webhook_receiver():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def itsm_configure(settings, monkeypatch, tmp_path):
    """configure(*entries, env={variable: value}) -> the connectors, as the file holding `entries` gives them."""

    def configure(*entries: dict, env: dict[str, str] | None = None) -> list[ConnectorConfig]:
        for variable, value in (env or {}).items():
            monkeypatch.setenv(variable, value)
        path = tmp_path / "itsm-connectors.json"
        path.write_text(json.dumps(list(entries)))
        monkeypatch.setenv("ITSM_CONFIG_FILE", str(path))
        settings.ITSM_CONNECTORS = connectors_load(str(path))
        return settings.ITSM_CONNECTORS

    return configure


def servicenow_entry(standin: ServiceNowStandIn, name: str = "servicenow", teams=("*",)) -> dict:
    return {"name": name, "kind": "servicenow", "url": standin.url, "teams": list(teams),
            "credentials": {"username_env": SERVICENOW_USERNAME_ENV, "password_env": SERVICENOW_PASSWORD_ENV}}


def jira_entry(standin: JiraStandIn, name: str = "jira", teams=("*",)) -> dict:
    return {"name": name, "kind": "jira", "url": standin.url, "teams": list(teams),
            "credentials": {"token_env": JIRA_TOKEN_ENV}, "service_desk_id": standin.service_desk_id,
            "request_type_id": standin.request_type_id, "transitions": JIRA_TRANSITIONS}


def webhook_entry(receiver: WebhookReceiver, name: str = "webhook", teams=("*",)) -> dict:
    return {"name": name, "kind": "webhook", "url": receiver.url + "/changeboard/hook", "teams": list(teams),
            "credentials": {"secret_env": WEBHOOK_SECRET_ENV}}


@pytest.fixture
def servicenow_connector(itsm_configure, servicenow) -> ConnectorConfig:
    """One ServiceNow connector for every team, pointed at the stand-in."""
    return itsm_configure(servicenow_entry(servicenow), env={
        SERVICENOW_USERNAME_ENV: servicenow.username, SERVICENOW_PASSWORD_ENV: servicenow.password})[0]


@pytest.fixture
def jira_connector(itsm_configure, jira) -> ConnectorConfig:
    """One Jira Service Management connector for every team, pointed at the stand-in."""
    return itsm_configure(jira_entry(jira), env={JIRA_TOKEN_ENV: jira.token})[0]


@pytest.fixture
def webhook_connector(itsm_configure, webhook_receiver) -> ConnectorConfig:
    """One generic webhook connector for every team, pointed at the receiver."""
    return itsm_configure(webhook_entry(webhook_receiver), env={WEBHOOK_SECRET_ENV: webhook_receiver.secret})[0]
