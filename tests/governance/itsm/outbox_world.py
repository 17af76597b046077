"""The world of the outbound sync tests: a team whose changes go to one connector pointed at a stand-in, a
requester who raises and moves changes through the real services, and the environment a worker needs to read the
same connectors (the JSON file, the credentials' variables, a fast backoff and a short lease)."""

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from governance.changes.services import change_request_create, change_request_transition, change_request_update
from governance.itsm.config import connectors_load
from governance.models import ChangeRequest, ChangeStatus, OutboxMessage
from tests.factories import make_ci, make_environment, make_team

# Fast enough for a test: retries within a second, a killed worker's updates taken over after two.
WORKER_SETTINGS = {"ITSM_RETRY_BASE_MS": "100", "ITSM_RETRY_CAP_SECONDS": "2", "ITSM_LEASE_SECONDS": "2"}


@dataclass
class OutboundWorld:
    team: object
    ci: object
    environment: object
    requester: object
    config_file: Path
    connector: str

    def raise_change(self, title: str) -> ChangeRequest:
        start = timezone.now() + timedelta(days=2)
        return change_request_create(
            actor=self.requester, cis=[self.ci], title=title, environment=self.environment, planned_start=start,
            planned_end=start + timedelta(hours=2), implementation_plan="helm upgrade", backout_plan="helm rollback",
            test_evidence="CI run green")

    def move_through(self, change: ChangeRequest) -> ChangeRequest:
        """Every update after the first: submitted, assessed, in CAB review, its title edited, cancelled."""
        change = change_request_transition(actor=self.requester, change=change, target=ChangeStatus.SUBMITTED)
        change = change_request_update(actor=self.requester, change=change, title=f"{change.title} (edited)")
        return change_request_transition(actor=self.requester, change=change, target=ChangeStatus.CANCELLED)

    def keys_of(self, change: ChangeRequest) -> list[str]:
        return list(OutboxMessage.objects.filter(change=change, connector=self.connector).order_by("sequence")
                    .values_list("idempotency_key", flat=True))


def outbound_world(*, tmp_path: Path, monkeypatch, settings, requester, name: str, kind: str, url: str,
                   credentials: dict[str, str], options: dict | None = None) -> OutboundWorld:
    """A team with one CI whose changes go to the connector `name`; the connector file and the credentials are in
    this process's environment (so the workers started afterwards read them) and in its settings."""
    team = make_team("payments", name="Payments")
    ci = make_ci("payments-api", team=team)
    environment = make_environment("production", 3)
    names = {}
    for key, value in credentials.items():
        variable = f"CB_TEST_{name.upper().replace('-', '_')}_{key.upper()}"
        monkeypatch.setenv(variable, value)
        names[f"{key}_env"] = variable
    config_file = tmp_path / "itsm.json"
    config_file.write_text(json.dumps([{"name": name, "kind": kind, "url": url, "teams": ["payments"],
                                        "credentials": names, **(options or {})}]))
    monkeypatch.setenv("ITSM_CONFIG_FILE", str(config_file))
    for variable, value in WORKER_SETTINGS.items():
        monkeypatch.setenv(variable, value)
    settings.ITSM_CONNECTORS = connectors_load(str(config_file))
    settings.ITSM_LEASE_SECONDS = int(WORKER_SETTINGS["ITSM_LEASE_SECONDS"])  # for the sweep run here
    return OutboundWorld(team=team, ci=ci, environment=environment, requester=requester, config_file=config_file,
                         connector=name)


def all_delivered(*changes: ChangeRequest) -> bool:
    return not OutboxMessage.objects.filter(change__in=changes).exclude(state="delivered").exists()
