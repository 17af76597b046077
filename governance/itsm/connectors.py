"""The connectors to the ITSM tools: which there are (settings.ITSM_CONNECTORS, read from the file ITSM_CONFIG_FILE
names), which serve a team, the client that delivers an outbox message to each, and the change as each kind maps it.
Every client's deliver() is idempotent: sent twice, an update is applied once."""

from collections.abc import Iterator
from typing import Protocol

from django.conf import settings

from governance.itsm.config import ConnectorConfig
from governance.itsm.jira import JiraClient, jira_payload
from governance.itsm.remote import DeliveryResult
from governance.itsm.servicenow import ServiceNowClient, servicenow_payload
from governance.itsm.webhook_out import WebhookClient, webhook_payload
from governance.models import ChangeRequest, ItsmRecord, OutboxMessage

__all__ = ["Connector", "ConnectorConfig", "DeliveryResult", "connector_client", "connector_named", "connectors",
           "connectors_for_team", "payload_for"]


class Connector(Protocol):
    def deliver(self, message: OutboxMessage, record: ItsmRecord | None) -> DeliveryResult: ...

    def deliver_all(self, messages: list[OutboxMessage], record: ItsmRecord | None) -> Iterator[DeliveryResult]:
        """A change's updates in sequence order, each result given before the next is sent (the caller stops at the
        first that fails)."""
        ...


def connectors() -> list[ConnectorConfig]:
    return list(settings.ITSM_CONNECTORS)


def connectors_for_team(team_slug: str) -> list[ConnectorConfig]:
    return [config for config in connectors() if config.serves(team_slug)]


def connector_named(name: str) -> ConnectorConfig | None:
    """The connector of that name; None once it is gone from the configuration (its messages stay, undelivered)."""
    return next((config for config in connectors() if config.name == name), None)


def connector_client(config: ConnectorConfig) -> Connector:
    if config.kind == "servicenow":
        return ServiceNowClient(config)
    if config.kind == "jira":
        return JiraClient(config)
    return WebhookClient(config)


def payload_for(kind: str, change: ChangeRequest) -> dict:
    """The change as a connector of that kind sends it, taken when the update is queued."""
    if kind == "servicenow":
        return servicenow_payload(change)
    if kind == "jira":
        return jira_payload(change)
    return webhook_payload(change)
