"""The world of the outbound sync tests: a team whose changes go to the connectors of tests/governance/itsm/
conftest.py (pointed at the stand-ins), and a requester who raises and moves changes through the real services.
`worker_env` gives the workers a test started a fast backoff and a short lease through the settings they read."""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from governance.changes.services import change_request_create, change_request_transition, change_request_update
from governance.models import ChangeRequest, ChangeStatus, OutboxMessage
from tests.factories import make_ci, make_environment, make_team

# Fast enough for a test: retries within a second, a killed worker's updates taken over after two seconds; enough
# attempts that a remote down for a few seconds is not given up on.
WORKER_SETTINGS = {"ITSM_RETRY_BASE_MS": "100", "ITSM_RETRY_CAP_SECONDS": "1", "ITSM_LEASE_SECONDS": "2",
                   "ITSM_MAX_ATTEMPTS": "30"}


@dataclass
class OutboundWorld:
    ci: object
    environment: object
    requester: object

    def raise_change(self, title: str) -> ChangeRequest:
        start = timezone.now() + timedelta(days=2)
        return change_request_create(
            actor=self.requester, cis=[self.ci], title=title, environment=self.environment, planned_start=start,
            planned_end=start + timedelta(hours=2), implementation_plan="helm upgrade", backout_plan="helm rollback",
            test_evidence="CI run green")

    def move_through(self, change: ChangeRequest, *, edited: bool = True) -> ChangeRequest:
        """Every update after the first: submitted (then assessed and routed, in the same transaction), its title
        edited (unless not), cancelled."""
        change = change_request_transition(actor=self.requester, change=change, target=ChangeStatus.SUBMITTED)
        if edited:
            change = change_request_update(actor=self.requester, change=change, title=f"{change.title} (edited)")
        return change_request_transition(actor=self.requester, change=change, target=ChangeStatus.CANCELLED)


def outbound_world(requester) -> OutboundWorld:
    team = make_team("payments", name="Payments")
    return OutboundWorld(ci=make_ci("payments-api", team=team), environment=make_environment("production", 3),
                         requester=requester)


def worker_env(monkeypatch, settings) -> None:
    """The relay's settings for the workers started after this (they read the environment) and for this process."""
    for variable, value in WORKER_SETTINGS.items():
        monkeypatch.setenv(variable, value)
        setattr(settings, variable, int(value))


def keys_of(change: ChangeRequest, connector: str) -> list[str]:
    return list(OutboxMessage.objects.filter(change=change, connector=connector).order_by("sequence")
                .values_list("idempotency_key", flat=True))


def all_delivered(changes: list[ChangeRequest]) -> bool:
    return not OutboxMessage.objects.filter(change__in=changes).exclude(state="delivered").exists()
