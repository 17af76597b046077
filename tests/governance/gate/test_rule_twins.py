"""The gate gathers its facts in one SQL function for speed; the calendar's rules in it are compiled from, or
applied with, the calendar's own code. These tests hold the gate's answers to the calendar's over tables of
cases: when a lockdown is in force, and which freezes stop which change."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group

from governance.calendar.services import window_occurrences_refresh
from governance.calendar.verdict import calendar_verdict
from governance.gate.facts import KnownFacts, gate_facts
from governance.gate.services import Question, gate_reasons
from governance.models import FreezeWindow, Lockdown
from tests.factories import make_ci, make_environment, make_user

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
PAST, FUTURE = NOW - timedelta(hours=2), NOW + timedelta(hours=2)


def test_a_lockdown_is_in_force_for_the_gate_exactly_when_the_calendar_says_so():
    pipeline = make_user("pipeline", "service_account")
    make_ci("payments-api")
    make_environment("prod", 1)
    cases = {}
    for declared, lifted, until in itertools.product((PAST, NOW, FUTURE), (None, PAST, NOW, FUTURE),
                                                     (None, PAST, NOW, FUTURE)):
        reason = f"declared {declared:%H:%M}, lifted {lifted and f'{lifted:%H:%M}'}, until {until and f'{until:%H:%M}'}"
        cases[reason] = Lockdown.objects.create(reason=reason, everything=True, declared_by=pipeline,
                                                declared_at=declared, lifted_at=lifted, until=until)
    facts = gate_facts(change="", service="payments-api", environment="prod", digest="", user_id=pipeline.pk,
                       token_id=None, at=NOW)
    in_force = set(Lockdown.objects.filter(Lockdown.in_force_at(NOW)).values_list("reason", flat=True))
    assert set(facts.lockdowns) == in_force
    # Declared by now, neither lifted nor run out by now: the boundaries fall where the calendar puts them.
    assert in_force == {reason for reason, lockdown in cases.items() if lockdown.declared_at <= NOW
                        and (lockdown.lifted_at is None or lockdown.lifted_at > NOW)
                        and (lockdown.until is None or lockdown.until > NOW)}
    assert 0 < len(in_force) < len(cases)


@pytest.mark.parametrize("severity, change_type", list(itertools.product(
    ("hard", "soft"), (None, "standard", "normal", "emergency"))))
def test_a_freeze_stops_a_deployment_at_the_gate_exactly_when_it_stops_the_change(severity, change_type):
    pipeline = make_user("pipeline", "service_account")
    service, prod = make_ci("payments-api"), make_environment("prod", 1)
    freeze = FreezeWindow.objects.create(name="Quarter close", severity=severity, timezone="UTC", recurrence="once",
                                         start_date=PAST.date(), start_time=PAST.time(), duration_minutes=600,
                                         everything=True,
                                         extra_approval_role_id=None if severity == "hard" else _cab_role_id())
    window_occurrences_refresh(freeze)
    now = datetime.now(UTC)
    facts = gate_facts(change="", service="payments-api", environment="prod", digest="", user_id=pipeline.pk,
                       token_id=None, at=now)
    known = KnownFacts(**{**vars(facts), "change": None if change_type is None else {
        **_no_change_reasons(prod), "change_type": change_type}})
    at_gate = [r for r in gate_reasons(known, Question("", "payments-api", "prod", ""), now=now)
               if r["code"] == "hard_freeze"]
    verdict = calendar_verdict([service], prod.pk, change_type, now, now + timedelta(microseconds=1), now)
    assert len(at_gate) == len(verdict.stopping_freezes)
    assert bool(at_gate) == (severity == "hard" and change_type != "emergency")


def _cab_role_id() -> int:
    return Group.objects.get(name="cab_member").pk


def _no_change_reasons(environment) -> dict:
    """A change fact that gives the gate no reason of its own, so only the calendar's show."""
    return {"id": 1, "number": "CHG0000001", "status": "approved", "environment_id": environment.pk,
            "environment": environment.name, "covers_service": True, "held_by": None,
            "planned_start": datetime.now(UTC) - timedelta(minutes=5),
            "planned_end": datetime.now(UTC) + timedelta(hours=1), "pinned_digests": [], "rolls_back": False}
