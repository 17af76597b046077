"""The calendar enforced by the change services: stored occurrences, scopes, lockdowns that stop the line at
once, hard and soft freezes, maintenance windows, freeze nearness in the risk score, and free slots."""

import random
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from governance.calendar import selectors
from governance.calendar.recurrence import next_occurrence, occurrences
from governance.calendar.services import (
    HORIZON,
    PAST,
    lockdown_declare,
    lockdown_lift,
    window_occurrences_refresh,
)
from governance.changes.scheduling import schedule_suggestions
from governance.changes.services import approval_record, change_request_transition, outstanding_approvals
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.models import ChangeStatus as S
from governance.models import FreezeWindow, Lockdown, MaintenanceWindow, Occurrence
from governance.roles import Role
from tests.factories import make_change, make_ci, make_team, make_user, sealed
from tests.governance.helpers import status_of, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    return SimpleNamespace(
        requester=make_user("riya", Role.REQUESTER), cab=make_user("carlos", Role.CAB_MEMBER),
        owner=make_user("bola", Role.BUSINESS_OWNER), release_manager=make_user("rachel", Role.RELEASE_MANAGER),
        commander=make_user("ines", Role.INCIDENT_COMMANDER),
    )


@pytest.fixture
def cis(db):
    team = make_team("payments")
    return SimpleNamespace(
        # tier 3 and outside every SOX/PCI policy, so a normal change needs the CAB member alone
        api=make_ci("statements-api", team=team, criticality=3, tags=["payments"]),
        other=make_ci("fx-rates", team=team, criticality=3),
        ledger=make_ci("ledger-db", team=team, ci_type="database", criticality=1, tags=["ledger"],
                       sox_scoped=True, phi=True, pci=True),
    )


def hour(days: float = 0, hours: float = 0) -> datetime:
    """A whole hour this far ahead of now, in UTC."""
    return (timezone.now() + timedelta(days=days, hours=hours)).replace(minute=0, second=0, microsecond=0)


def freeze(name: str, start: datetime, hours: float, *, environments=(), cis=(), severity: str = "hard",
           role: str | None = None, **scope) -> FreezeWindow:
    window = FreezeWindow.objects.create(
        name=name, timezone="UTC", start_date=start.date(), start_time=start.time(), duration_minutes=int(hours * 60),
        severity=severity, extra_approval_role=Group.objects.get(name=role) if role else None, **scope)
    window.environments.set(environments)
    window.cis.set(cis)
    window_occurrences_refresh(window)
    return window


def change_at(people, start: datetime, *, ci, environment, hours: float = 2, **fields):
    return make_change(people.requester, cis=[ci], environment=environment, planned_start=start,
                       planned_end=start + timedelta(hours=hours), **fields)


def approved(change, people):
    submit(change)
    approval_record(actor=people.cab, change=change, decision="approve")
    change.refresh_from_db()
    assert change.status == S.APPROVED
    return change


def scheduled(change, people):
    approved(change, people)
    return change_request_transition(actor=people.release_manager, change=change, target=S.SCHEDULED)


# --- occurrences are stored -----------------------------------------------------------------------------------

def test_refreshing_a_window_stores_its_occurrences_for_the_horizon_and_an_inactive_one_has_none():
    now = timezone.now()
    weekly = FreezeWindow.objects.create(name="Friday", timezone="Europe/London", recurrence="rrule",
                                         rrule="FREQ=WEEKLY;BYDAY=FR", start_date=(now - timedelta(days=90)).date(),
                                         duration_minutes=60)
    count = window_occurrences_refresh(weekly, now=now)
    assert count in (61, 62)  # a year and a month back, by the week
    stored = sorted((o.period.lower, o.period.upper) for o in Occurrence.objects.filter(freeze=weekly))
    assert stored == occurrences(weekly, now - PAST, now + HORIZON)
    assert len(stored) == count
    assert window_occurrences_refresh(weekly, now=now) == count
    assert Occurrence.objects.filter(freeze=weekly).count() == count  # a second refresh replaces, never adds

    weekly.active = False
    weekly.save()
    assert window_occurrences_refresh(weekly, now=now) == 0
    assert not Occurrence.objects.filter(freeze=weekly).exists()

    tier1 = MaintenanceWindow.objects.create(name="Tuesday", recurrence="once", start_date=now.date(),
                                             duration_minutes=240)
    assert window_occurrences_refresh(tier1, now=now) == 1
    assert Occurrence.objects.get(maintenance=tier1).freeze is None


# --- scopes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("scope", "covered", "missed"), [
    ({"everything": True}, [("api", "prod"), ("ledger", "staging"), (None, "staging")], []),
    ({"environments": ["prod"]}, [("api", "prod"), (None, "prod")], [("api", "staging"), (None, "staging")]),
    ({"cis": ["api"]}, [("api", "prod"), ("api", "staging")], [("other", "prod"), (None, "prod")]),
    ({"ci_types": ["database"]}, [("ledger", "prod")], [("api", "prod")]),
    ({"tags": ["payments", "cards"]}, [("api", "prod")], [("ledger", "prod"), ("other", "prod")]),
    ({"max_criticality": 1}, [("ledger", "prod")], [("api", "prod")]),
    ({"max_criticality": 3}, [("ledger", "prod"), ("api", "prod")], []),
    ({"sox_scoped": True}, [("ledger", "prod")], [("api", "prod")]),
    ({"phi": True}, [("ledger", "prod")], [("api", "prod")]),
    ({"pci": True}, [("ledger", "prod")], [("api", "prod")]),
    ({"environments": ["prod"], "sox_scoped": True}, [("ledger", "prod")], [("ledger", "staging"), ("api", "prod"),
                                                                           (None, "prod")]),
    ({"tags": ["payments"], "max_criticality": 1}, [], [("api", "prod"), ("ledger", "prod")]),
    ({"cis": ["ledger"], "ci_types": ["database"], "pci": True}, [("ledger", "prod")], [("api", "prod")]),
    ({}, [], [("api", "prod"), (None, "prod")]),  # a scope that sets nothing covers nothing
])
def test_a_scope_covers_what_meets_every_condition_it_sets(envs, cis, scope, covered, missed):
    scope = dict(scope)
    environments = [getattr(envs, name) for name in scope.pop("environments", [])]
    items = [getattr(cis, name) for name in scope.pop("cis", [])]
    window = freeze("scoped", hour(days=30), 1, environments=environments, cis=items, **scope)
    window = FreezeWindow.objects.prefetch_related(*selectors.SCOPE_PREFETCH).get(pk=window.pk)
    moment = window.occurrences.get().period.lower
    for expected, cases in ((True, covered), (False, missed)):
        for ci, env in cases:
            item, environment = getattr(cis, ci) if ci else None, getattr(envs, env).pk
            assert selectors.covers(window, item, environment) is expected, (ci, env)
            # The database's answer (freezes_covering) is the same.
            hits = selectors.freezes_covering([item] if item else [], environment, moment,
                                              moment + timedelta(minutes=1))
            assert bool(hits) is expected, (ci, env)


def test_the_database_and_python_agree_on_what_random_scopes_cover(envs):
    """covers_any (judged in Python) and covers_any_sql (judged by PostgreSQL) over many random scopes."""
    rng = random.Random(20261127)
    team = make_team("platform")
    items = [make_ci(f"ci-{n}", team=team, ci_type=rng.choice(["service", "database", "host"]),
                     criticality=rng.randint(1, 4), tags=rng.sample(["a", "b", "c"], rng.randint(0, 2)),
                     sox_scoped=rng.random() < 0.5, phi=rng.random() < 0.3, pci=rng.random() < 0.4) for n in range(8)]
    for n in range(60):
        scope = {"everything": rng.random() < 0.05}
        for name, value in (("ci_types", [rng.choice(["service", "database"])]), ("tags", [rng.choice("abc")]),
                            ("max_criticality", rng.randint(1, 3)), ("sox_scoped", True), ("phi", True),
                            ("pci", True)):
            if rng.random() < 0.25:
                scope[name] = value
        freeze(f"random {n}", hour(days=30), 1, environments=rng.sample([envs.prod, envs.staging], rng.randint(0, 1)),
               cis=rng.sample(items, rng.choice([0, 0, 1, 3])), **scope)
    freezes = list(FreezeWindow.objects.prefetch_related(*selectors.SCOPE_PREFETCH))
    sizes = []
    for _ in range(40):
        chosen, environment = rng.sample(items, rng.choice([0, 1, 1, 2])), rng.choice([envs.prod, envs.staging]).pk
        expected = {f.pk for f in freezes if selectors.covers_any(f, chosen, environment)}
        found = set(FreezeWindow.objects.filter(selectors.covers_any_sql(FreezeWindow, chosen, environment))
                    .values_list("pk", flat=True))
        assert found == expected, ([c.name for c in chosen], environment)
        sizes.append(len(found))
    assert 0 < sum(sizes) < 40 * len(freezes)  # the scopes both cover and miss


def test_a_scope_covers_a_change_when_it_covers_any_of_its_cis(envs, cis):
    window = freeze("ledger only", hour(days=30), 1, cis=[cis.ledger])
    assert selectors.covers_any(window, [cis.api, cis.ledger], envs.prod.pk)
    assert not selectors.covers_any(window, [cis.api, cis.other], envs.prod.pk)
    start = hour(days=30)
    assert [hit.freeze for hit in selectors.freezes_covering([cis.api, cis.ledger], envs.prod.pk, start,
                                                            start + timedelta(minutes=1))] == [window]
    assert selectors.freezes_covering([cis.api], envs.prod.pk, start, start + timedelta(minutes=1)) == []


# --- lockdowns ------------------------------------------------------------------------------------------------

def in_flight(people, envs, cis):
    """An approved and a scheduled change in production, and a scheduled one in staging, all open now."""
    now = timezone.now()
    prod_approved = approved(change_at(people, now + timedelta(days=2), ci=cis.api, environment=envs.prod), people)
    prod_scheduled = scheduled(change_at(people, now - timedelta(minutes=5), ci=cis.api, environment=envs.prod),
                               people)
    staging_scheduled = scheduled(change_at(people, now - timedelta(minutes=5), ci=cis.other,
                                            environment=envs.staging), people)
    return prod_approved, prod_scheduled, staging_scheduled


def test_a_lockdown_holds_changes_in_flight_in_its_scope_the_moment_it_is_declared(people, envs, cis):
    prod_approved, prod_scheduled, staging_scheduled = in_flight(people, envs, cis)
    lockdown = lockdown_declare(actor=people.commander, reason="Payments outage INC-42", environments=[envs.prod])
    assert selectors.lockdowns_covering([cis.api], envs.prod.pk, timezone.now()) == [lockdown]
    assert selectors.lockdowns_covering([cis.other], envs.staging.pk, timezone.now()) == []
    for change in (prod_approved, prod_scheduled):
        change.refresh_from_db()
        assert change.held_by == lockdown
    staging_scheduled.refresh_from_db()
    assert staging_scheduled.held_by is None

    with pytest.raises(Conflict) as refused:
        change_request_transition(actor=people.release_manager, change=prod_scheduled, target=S.IMPLEMENTING)
    assert "Payments outage INC-42" in refused.value.message
    assert status_of(prod_scheduled) == S.SCHEDULED
    # Out of scope, the line keeps moving.
    change_request_transition(actor=people.release_manager, change=staging_scheduled, target=S.IMPLEMENTING)
    assert status_of(staging_scheduled) == S.IMPLEMENTING


def test_a_lockdown_refuses_approval_and_scheduling_in_scope_until_it_is_lifted(people, envs, cis):
    in_review = submit(change_at(people, hour(days=3), ci=cis.api, environment=envs.prod))
    to_schedule = approved(change_at(people, hour(days=4), ci=cis.api, environment=envs.prod), people)
    lockdown = lockdown_declare(actor=people.release_manager, reason="Card outage INC-7",
                                scope={"everything": True})

    with pytest.raises(Conflict) as refused:
        approval_record(actor=people.cab, change=in_review, decision="approve")
    assert refused.value.code == "calendar"
    assert "A lockdown stops the line: Card outage INC-7" in refused.value.message
    with pytest.raises(Conflict) as refused:
        change_request_transition(actor=people.release_manager, change=to_schedule, target=S.SCHEDULED)
    assert "Card outage INC-7" in refused.value.message
    assert (status_of(in_review), status_of(to_schedule)) == (S.CAB_REVIEW, S.APPROVED)

    lockdown_lift(actor=people.commander, lockdown=lockdown, reason="INC-7 resolved")
    assert selectors.lockdowns_covering([cis.api], envs.prod.pk, timezone.now()) == []
    to_schedule.refresh_from_db()
    assert to_schedule.held_by is None
    approval_record(actor=people.cab, change=in_review, decision="approve")
    change_request_transition(actor=people.release_manager, change=to_schedule, target=S.SCHEDULED)
    assert (status_of(in_review), status_of(to_schedule)) == (S.APPROVED, S.SCHEDULED)


def test_lifting_a_lockdown_lets_held_changes_start(people, envs, cis):
    _, prod_scheduled, _ = in_flight(people, envs, cis)
    lockdown = lockdown_declare(actor=people.commander, reason="DNS trouble", environments=[envs.prod])
    lockdown_lift(actor=people.commander, lockdown=lockdown, reason="fixed")
    prod_scheduled.refresh_from_db()
    assert prod_scheduled.held_by is None
    change_request_transition(actor=people.release_manager, change=prod_scheduled, target=S.IMPLEMENTING)
    assert status_of(prod_scheduled) == S.IMPLEMENTING
    with pytest.raises(Conflict):
        lockdown_lift(actor=people.commander, lockdown=lockdown)


def test_a_lockdown_that_ran_out_holds_nothing_any_more(people, envs, cis):
    _, prod_scheduled, _ = in_flight(people, envs, cis)
    lockdown = lockdown_declare(actor=people.commander, reason="Short pause", environments=[envs.prod],
                                until=timezone.now() + timedelta(hours=1))
    now = timezone.now()
    Lockdown.objects.filter(pk=lockdown.pk).update(declared_at=now - timedelta(hours=2),
                                                   until=now - timedelta(seconds=1))  # as if an hour passed
    prod_scheduled.refresh_from_db()
    assert prod_scheduled.held_by_id == lockdown.pk
    change_request_transition(actor=people.release_manager, change=prod_scheduled, target=S.IMPLEMENTING)
    assert status_of(prod_scheduled) == S.IMPLEMENTING


def test_only_release_managers_and_incident_commanders_declare_lockdowns(people, envs):
    with pytest.raises(Forbidden):
        lockdown_declare(actor=people.requester, reason="I want a break", scope={"everything": True})
    with pytest.raises(Forbidden):
        lockdown_declare(actor=people.cab, reason="I want a break", scope={"everything": True})
    assert not Lockdown.objects.exists()
    lockdown = lockdown_declare(actor=people.commander, reason="Outage", scope={"everything": True})
    assert lockdown.declared_by == people.commander
    with pytest.raises(Forbidden):
        lockdown_lift(actor=people.requester, lockdown=lockdown)
    lockdown.refresh_from_db()
    assert lockdown.lifted_at is None


@pytest.mark.parametrize(("arguments", "field"), [
    ({"reason": "  ", "scope": {"everything": True}}, "reason"),
    ({"reason": "Outage", "scope": {"everything": True}, "until": "past"}, "until"),
    ({"reason": "Outage"}, "everything"),
    ({"reason": "Outage", "scope": {"everything": False, "tags": []}}, "everything"),
])
def test_a_lockdown_needs_a_reason_a_future_end_and_a_scope(people, arguments, field):
    if arguments.get("until") == "past":
        arguments = {**arguments, "until": timezone.now() - timedelta(minutes=1)}
    with pytest.raises(InvalidInput) as refused:
        lockdown_declare(actor=people.commander, **arguments)
    assert refused.value.field == field
    assert not Lockdown.objects.exists()


# --- freezes --------------------------------------------------------------------------------------------------

def test_a_hard_freeze_refuses_approval_naming_the_freeze_and_its_times(people, envs, cis):
    start = hour(days=10)
    freeze("Quarter-end close", start, 24, environments=[envs.prod])
    change = submit(change_at(people, start + timedelta(hours=2), ci=cis.api, environment=envs.prod))
    with pytest.raises(Conflict) as refused:
        approval_record(actor=people.cab, change=change, decision="approve")
    end = start + timedelta(hours=24)
    assert refused.value.message == (f"The window meets the hard freeze Quarter-end close ({start:%Y-%m-%d %H:%M} "
                                     f"to {end:%Y-%m-%d %H:%M} UTC): move the change.")
    assert status_of(change) == S.CAB_REVIEW
    # Outside the freeze's scope the same approval goes through.
    elsewhere = submit(change_at(people, start + timedelta(hours=2), ci=cis.api, environment=envs.staging))
    approval_record(actor=people.cab, change=elsewhere, decision="approve")
    assert status_of(elsewhere) == S.APPROVED


def test_a_hard_freeze_declared_after_approval_refuses_scheduling(people, envs, cis):
    start = hour(days=10)
    change = approved(change_at(people, start + timedelta(hours=23), ci=cis.api, environment=envs.prod), people)
    freeze("Payments freeze", start, 24, cis=[cis.api])
    with pytest.raises(Conflict) as refused:
        change_request_transition(actor=people.release_manager, change=change, target=S.SCHEDULED)
    assert "hard freeze Payments freeze" in refused.value.message
    assert f"{start:%Y-%m-%d %H:%M} to {start + timedelta(hours=24):%Y-%m-%d %H:%M} UTC" in refused.value.message
    assert status_of(change) == S.APPROVED
    # A window that ends as the freeze begins is clear of it.
    clear = approved(change_at(people, start - timedelta(hours=2), ci=cis.api, environment=envs.prod), people)
    change_request_transition(actor=people.release_manager, change=clear, target=S.SCHEDULED)
    assert status_of(clear) == S.SCHEDULED


def test_an_emergency_change_approved_by_the_emergency_cab_goes_ahead_in_a_hard_freeze_on_the_record(people, envs,
                                                                                                    cis):
    start = hour(days=10)
    freeze("Month-end close", start, 24, environments=[envs.prod])
    change = submit(change_at(people, start + timedelta(hours=1), ci=cis.api, environment=envs.prod,
                              change_type="emergency"))
    assert [(o.role, o.needed) for o in outstanding_approvals(change)] == [(Role.CAB_MEMBER, 1)]
    approval_record(actor=people.cab, change=change, decision="approve")
    assert status_of(change) == S.APPROVED
    change_request_transition(actor=people.release_manager, change=change, target=S.SCHEDULED)
    assert status_of(change) == S.SCHEDULED
    [event] = sealed(action="freeze_override")
    assert (event.object_type, event.object_id) == ("governance.changerequest", str(change.pk))
    assert event.context["freezes"] == ["Month-end close"]
    assert event.context["approved_by"] == "carlos"


def test_an_emergency_change_outside_any_freeze_records_no_override(people, envs, cis):
    change = submit(change_at(people, hour(days=10), ci=cis.api, environment=envs.prod, change_type="emergency"))
    approval_record(actor=people.cab, change=change, decision="approve")
    assert status_of(change) == S.APPROVED
    assert sealed(action="freeze_override") == []


def test_a_soft_freeze_asks_one_more_approval_from_its_role(people, envs, cis):
    start = hour(days=20)
    freeze("Christmas week", start, 24 * 7, severity="soft", role=Role.BUSINESS_OWNER, environments=[envs.prod])
    change = submit(change_at(people, start + timedelta(days=2), ci=cis.api, environment=envs.prod))
    assert sorted((o.role, o.needed) for o in outstanding_approvals(change)) == [
        (Role.BUSINESS_OWNER, 1), (Role.CAB_MEMBER, 1)]
    approval_record(actor=people.cab, change=change, decision="approve")
    assert status_of(change) == S.CAB_REVIEW  # the usual approvals are in; the freeze's is not
    approval_record(actor=people.owner, change=change, decision="approve")
    assert status_of(change) == S.APPROVED
    change_request_transition(actor=people.release_manager, change=change, target=S.SCHEDULED)
    assert status_of(change) == S.SCHEDULED
    # The same change a week later needs the CAB member only.
    later = submit(change_at(people, start + timedelta(days=8), ci=cis.api, environment=envs.prod))
    assert [o.role for o in outstanding_approvals(later)] == [Role.CAB_MEMBER]


def test_a_soft_freeze_asking_the_role_the_policy_asks_wants_two_of_them(people, envs, cis):
    start = hour(days=20)
    freeze("Peak trading", start, 48, severity="soft", role=Role.CAB_MEMBER, environments=[envs.prod])
    change = submit(change_at(people, start + timedelta(hours=3), ci=cis.api, environment=envs.prod))
    assert [(o.role, o.needed) for o in outstanding_approvals(change)] == [(Role.CAB_MEMBER, 2)]
    approval_record(actor=people.cab, change=change, decision="approve")
    assert status_of(change) == S.CAB_REVIEW
    approval_record(actor=make_user("chen", Role.CAB_MEMBER), change=change, decision="approve")
    assert status_of(change) == S.APPROVED


# --- maintenance windows --------------------------------------------------------------------------------------

def maintenance(name: str, start: datetime, hours: float, *, enforcement: str, rrule: str = "",
                environments=(), **scope) -> MaintenanceWindow:
    window = MaintenanceWindow.objects.create(
        name=name, timezone="UTC", recurrence="rrule" if rrule else "once", rrule=rrule, start_date=start.date(),
        start_time=start.time(), duration_minutes=int(hours * 60), enforcement=enforcement, **scope)
    window.environments.set(environments)
    window_occurrences_refresh(window)
    return window


def test_a_refusing_maintenance_window_refuses_scheduling_outside_it_and_names_its_next_occurrence(people, envs,
                                                                                                    cis):
    first = hour(days=2).replace(hour=22)
    window = maintenance("Production nightly", first, 4, enforcement="refuse", rrule="FREQ=DAILY",
                         environments=[envs.prod])
    outside = approved(change_at(people, first + timedelta(days=1, hours=6), ci=cis.api, environment=envs.prod),
                       people)
    with pytest.raises(Conflict) as refused:
        change_request_transition(actor=people.release_manager, change=outside, target=S.SCHEDULED)
    upcoming = next_occurrence(window, timezone.now())
    assert refused.value.message == ("The window is outside every maintenance window allowed here: Production nightly "
                                     f"(next {upcoming[0]:%Y-%m-%d %H:%M} to {upcoming[1]:%Y-%m-%d %H:%M} UTC).")
    assert status_of(outside) == S.APPROVED
    inside = approved(change_at(people, first + timedelta(days=1, hours=1), ci=cis.api, environment=envs.prod),
                      people)
    change_request_transition(actor=people.release_manager, change=inside, target=S.SCHEDULED)
    assert status_of(inside) == S.SCHEDULED
    # A change running past the end of the night is outside it too.
    overrunning = approved(change_at(people, first + timedelta(days=1, hours=3), ci=cis.api, environment=envs.prod),
                           people)
    with pytest.raises(Conflict):
        change_request_transition(actor=people.release_manager, change=overrunning, target=S.SCHEDULED)


def test_a_flagging_maintenance_window_does_not_refuse(people, envs, cis):
    first = hour(days=2).replace(hour=22)
    maintenance("Production nightly", first, 4, enforcement="flag", rrule="FREQ=DAILY", environments=[envs.prod])
    outside = approved(change_at(people, first + timedelta(days=1, hours=6), ci=cis.api, environment=envs.prod),
                       people)
    change_request_transition(actor=people.release_manager, change=outside, target=S.SCHEDULED)
    assert status_of(outside) == S.SCHEDULED


def test_a_flagging_window_does_not_let_a_change_out_of_a_refusing_one(people, envs, cis):
    first = hour(days=2).replace(hour=22)
    maintenance("Tier 3 nights", first, 4, enforcement="refuse", rrule="FREQ=DAILY", max_criticality=3)
    maintenance("Production afternoons", first - timedelta(hours=8), 4, enforcement="flag", rrule="FREQ=DAILY",
                environments=[envs.prod])
    afternoon = approved(change_at(people, first + timedelta(days=1, hours=-7), ci=cis.api, environment=envs.prod),
                         people)
    with pytest.raises(Conflict) as refused:
        change_request_transition(actor=people.release_manager, change=afternoon, target=S.SCHEDULED)
    assert "Tier 3 nights" in refused.value.message
    assert "Production afternoons" not in refused.value.message


def test_a_maintenance_window_governs_only_its_change_types(people, envs, cis):
    first = hour(days=2).replace(hour=22)
    maintenance("Emergency slots", first, 2, enforcement="refuse", rrule="FREQ=DAILY", environments=[envs.prod],
                change_types=["emergency"])
    normal = approved(change_at(people, first + timedelta(days=1, hours=6), ci=cis.api, environment=envs.prod),
                      people)
    change_request_transition(actor=people.release_manager, change=normal, target=S.SCHEDULED)
    assert status_of(normal) == S.SCHEDULED


# --- risk -----------------------------------------------------------------------------------------------------

def test_a_window_near_a_freeze_scores_higher_and_says_which_freeze(people, envs, cis):
    start = hour(days=10)
    freeze("Month-end close", start, 24, environments=[envs.prod])
    near = submit(change_at(people, start - timedelta(hours=30), ci=cis.api, environment=envs.prod))
    far = submit(change_at(people, start - timedelta(hours=60), ci=cis.api, environment=envs.prod))
    near.refresh_from_db()
    far.refresh_from_db()
    assert near.risk_score == far.risk_score + 10
    [factor] = [f for f in near.risk_factors if f["factor"] == "freeze nearness"]
    assert factor == {"factor": "freeze nearness", "detail": "within 48 hours of Month-end close", "points": 10}
    assert not [f for f in far.risk_factors if f["factor"] == "freeze nearness"]
    # A freeze out of the change's scope is not near it.
    elsewhere = submit(change_at(people, start - timedelta(hours=30), ci=cis.api, environment=envs.staging))
    elsewhere.refresh_from_db()
    assert not [f for f in elsewhere.risk_factors if f["factor"] == "freeze nearness"]


# --- suggestions ----------------------------------------------------------------------------------------------

def test_suggested_slots_are_inside_maintenance_windows_clear_of_freezes_lockdowns_and_other_changes(people, envs,
                                                                                                     cis):
    day = hour(days=1).replace(hour=0)  # midnight tomorrow, UTC
    maintenance("Nightly", day + timedelta(hours=22), 4, enforcement="flag", rrule="FREQ=DAILY",
                environments=[envs.prod])
    freeze("Two nights", day + timedelta(days=1, hours=20), 34, environments=[envs.prod])  # nights 1 and 2
    approved(change_at(people, day + timedelta(days=4, hours=22), ci=cis.api, environment=envs.prod, hours=1),
             people)  # the first hour of night 4
    lockdown_declare(actor=people.commander, reason="Outage", environments=[envs.prod],
                     until=day + timedelta(hours=25))  # night 0, but for its last hour
    change = change_at(people, day + timedelta(days=30), ci=cis.api, environment=envs.prod, hours=2)
    slots = schedule_suggestions(change, after=day + timedelta(hours=12))
    night = [day + timedelta(days=n, hours=22) for n in range(10)]
    assert slots == [
        (night[3], night[3] + timedelta(hours=2)),
        (night[4] + timedelta(hours=1), night[4] + timedelta(hours=3)),  # after the other change, same night
        (night[5], night[5] + timedelta(hours=2)),
        (night[6], night[6] + timedelta(hours=2)),
        (night[7], night[7] + timedelta(hours=2)),
    ]
    # Every suggestion would be accepted by the calendar.
    for start, end in slots:
        assert not selectors.freezes_covering([cis.api], envs.prod.pk, start, end)
        assert start.tzinfo is not None and start.utcoffset() == timedelta(0)


def test_without_maintenance_windows_slots_are_on_the_hour_and_skip_freezes(people, envs, cis):
    day = hour(days=1).replace(hour=0)
    freeze("Morning", day + timedelta(hours=9), 3, environments=[envs.prod])
    change = change_at(people, day + timedelta(days=30), ci=cis.api, environment=envs.prod, hours=1)
    slots = schedule_suggestions(change, after=day + timedelta(hours=6, minutes=20), count=4)
    assert [s for s, _ in slots] == [day + timedelta(hours=h) for h in (7, 8, 12, 13)]
    on_the_hour = schedule_suggestions(change, after=day + timedelta(hours=8), count=2)
    assert [s for s, _ in on_the_hour] == [day + timedelta(hours=8), day + timedelta(hours=12)]



def test_no_slot_is_suggested_while_an_open_ended_lockdown_covers_the_change(people, envs, cis):
    day = hour(days=1).replace(hour=0)
    maintenance("Late mornings", day + timedelta(hours=10), 4, enforcement="flag", rrule="FREQ=DAILY",
                environments=[envs.prod])
    change = change_at(people, day + timedelta(days=30), ci=cis.api, environment=envs.prod, hours=1)
    after = day + timedelta(hours=12)  # the search starts and ends at noon, in the middle of a window
    starts = [after, *(day + timedelta(days=n, hours=10) for n in (1, 2, 3))]
    assert [s for s, _ in schedule_suggestions(change, after=after, horizon=timedelta(days=3))] == starts
    lockdown = lockdown_declare(actor=people.commander, reason="Outage", environments=[envs.prod])
    assert schedule_suggestions(change, after=after, horizon=timedelta(days=3)) == []
    lockdown_lift(actor=people.commander, lockdown=lockdown)
    assert [s for s, _ in schedule_suggestions(change, after=after, horizon=timedelta(days=3))] == starts
