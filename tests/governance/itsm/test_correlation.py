"""Correlation: among several deployments and incidents, the true cause ranks first; the score's parts add up to it;
ranking again keeps a release manager's decisions; a confirmed cause marks its deployment and counts in the risk of
later changes to its service."""

from datetime import timedelta

import pytest

from governance.changes.services import change_request_transition
from governance.core.errors import Forbidden, InvalidInput
from governance.itsm.correlation import suspect_decide, suspects_rank
from governance.models.itsm import IncidentSuspect, SuspectStatus
from releases.models import Deployment, DeploymentKind, DeploymentPlan, DeploymentStatus, RolloutStep
from tests.factories import make_change, sealed
from tests.governance.itsm import incident_world
from tests.governance.itsm.incident_world import deployed, incident_in

estate = incident_world.estate  # the fixture


@pytest.fixture
def history(estate):
    """Deployments before the incidents: one that broke payments, and the others that ran around it."""
    e = estate
    return {
        # The cause of the checkout incident: payments-api half an hour before, rolled back.
        "cause": deployed(e, e.payments_api, before=timedelta(minutes=30), status=DeploymentStatus.ROLLED_BACK,
                          change_number="CHG0000101"),
        "earlier_same_ci": deployed(e, e.payments_api, before=timedelta(hours=20)),
        "db_just_before": deployed(e, e.payments_db, before=timedelta(minutes=10)),
        "search_just_before": deployed(e, e.search_api, before=timedelta(minutes=5)),
        "staging_same_ci": deployed(e, e.payments_api, before=timedelta(minutes=2), environment=e.staging),
        "outside_window": deployed(e, e.payments_api, before=timedelta(hours=80)),
        "after_opening": deployed(e, e.payments_api, before=timedelta(minutes=-10)),
    }


def ranked(incident) -> list[str]:
    return [s.deployment.number for s in incident.suspects.select_related("deployment").order_by("rank")]


def test_the_true_cause_ranks_first_among_the_recent_production_deployments(estate, history):
    checkout = incident_in(estate, sys_id="c" * 32, cmdb_ci="payments-api")
    search = incident_in(estate, sys_id="d" * 32, number="INC0010002", short_description="Search times out",
                         cmdb_ci="search-api")
    assert ranked(checkout) == [history[name].number for name in ("cause", "db_just_before", "earlier_same_ci")]
    assert ranked(search) == [history["search_just_before"].number]


def test_each_score_is_the_sum_of_the_parts_shown(estate, history):
    incident = incident_in(estate, cmdb_ci="checkout")
    suspects = list(incident.suspects.all())
    assert len(suspects) >= 3
    for suspect in suspects:
        assert suspect.score == sum(part["points"] for part in suspect.parts)
        assert [part["factor"] for part in suspect.parts][1:] == ["time since deployment", "health"]
    cause = incident.suspects.get(deployment=history["cause"])
    assert cause.parts[0]["factor"] == "blast radius"
    assert "checkout → cart → payments-api" in cause.parts[0]["detail"]
    assert cause.parts[2] == {"factor": "health", "detail": "rolled back", "points": 15}
    assert cause.rank == 1


def test_a_same_ci_deployment_outscores_one_further_away_at_the_same_time(estate):
    near = deployed(estate, estate.cart, before=timedelta(hours=1))
    far = deployed(estate, estate.payments_db, before=timedelta(hours=1))
    incident = incident_in(estate, cmdb_ci="cart")
    scores = {s.deployment_id: s.score for s in incident.suspects.all()}
    assert scores[near.pk] > scores[far.pk]
    assert incident.suspects.get(deployment=far).parts[0]["points"] < incident.suspects.get(deployment=near).parts[0][
        "points"]


def test_ranking_again_keeps_the_decisions(estate, history, release_manager):
    incident = incident_in(estate, cmdb_ci="payments-api")
    dismissed = incident.suspects.get(rank=1)
    suspect_decide(actor=release_manager, suspect=dismissed, status=SuspectStatus.DISMISSED, reason="Not it")
    suspects_rank(incident)
    dismissed.refresh_from_db()
    assert (dismissed.status, dismissed.reason, dismissed.decided_by) == ("dismissed", "Not it", release_manager)


def test_confirming_marks_the_deployment_as_having_caused_a_failure_in_the_ledger(estate, history,
                                                                                  release_manager):
    incident = incident_in(estate, cmdb_ci="payments-api")
    cause = incident.suspects.get(deployment=history["cause"])
    suspect_decide(actor=release_manager, suspect=cause, status=SuspectStatus.CONFIRMED, reason="Rolled back at once")
    history["cause"].refresh_from_db()
    assert history["cause"].caused_failure
    [event] = sealed(action="incident_suspect_confirmed")
    assert event.context["deployment"] == history["cause"].number
    assert event.context["reason"] == "Rolled back at once"
    assert sealed(object_type="releases.deployment", object_id=str(history["cause"].pk), action="update")


def test_dismissing_a_confirmed_suspect_takes_the_mark_off_its_deployment(estate, history, release_manager):
    incident = incident_in(estate, cmdb_ci="payments-api")
    cause = incident.suspects.get(deployment=history["cause"])
    suspect_decide(actor=release_manager, suspect=cause, status=SuspectStatus.CONFIRMED, reason="It was")
    suspect_decide(actor=release_manager, suspect=cause, status=SuspectStatus.DISMISSED, reason="It was the db")
    history["cause"].refresh_from_db()
    assert not history["cause"].caused_failure


@pytest.mark.parametrize("persona", ["requester", "cab_member", "auditor", "outsider"])
def test_only_a_release_manager_decides_a_suspect(estate, history, persona, request):
    incident = incident_in(estate, cmdb_ci="payments-api")
    suspect = incident.suspects.first()
    with pytest.raises(Forbidden):
        suspect_decide(actor=request.getfixturevalue(persona), suspect=suspect, status="confirmed", reason="x")
    assert IncidentSuspect.objects.filter(status=SuspectStatus.SUSPECTED).count() == incident.suspects.count()


@pytest.mark.parametrize(("status", "reason", "field"), [("maybe", "x", "status"), ("confirmed", "  ", "reason"),
                                                         ("dismissed", "x" * 1001, "reason")])
def test_a_bad_decision_is_refused_naming_the_field(estate, history, release_manager, status, reason, field):
    suspect = incident_in(estate, cmdb_ci="payments-api").suspects.first()
    with pytest.raises(InvalidInput) as refused:
        suspect_decide(actor=release_manager, suspect=suspect, status=status, reason=reason)
    assert refused.value.field == field


def recent_failures(change) -> dict:
    change.refresh_from_db()
    return next(f for f in change.risk_factors if f["factor"] == "recent failures")


def submitted(change):
    return change_request_transition(actor=change.requester, change=change, target="submitted")


def test_a_confirmed_cause_counts_in_the_recent_failures_of_a_later_change_to_its_service(
        estate, release_manager, requester):
    e = estate
    earlier = make_change(requester, cis=[e.payments_api], environment=e.prod, status="completed")
    cause = deployed(e, e.payments_api, before=timedelta(minutes=30), change_number=earlier.number)
    incident = incident_in(e, cmdb_ci="payments-api")
    before = submitted(make_change(requester, cis=[e.payments_api], environment=e.prod))
    assert recent_failures(before)["points"] == 0
    suspect_decide(actor=release_manager, suspect=incident.suspects.get(deployment=cause), status="confirmed",
                   reason="The rollout broke payments")
    after = submitted(make_change(requester, cis=[e.payments_api], environment=e.prod))
    assert recent_failures(after) == {"factor": "recent failures", "points": 20,
                                      "detail": "1 of 1 recent changes to these CIs failed or were rolled back"}


def test_failed_health_checks_in_its_steps_add_to_a_suspects_score(estate):
    plan = DeploymentPlan.objects.create(service=estate.cart, environment=estate.prod, executor_settings={
        "forward": ["true", "{targets}"], "backward": ["true", "{targets}"], "timeout_seconds": 30})
    checked = deployed(estate, estate.cart, before=timedelta(hours=1))
    Deployment.objects.filter(pk=checked.pk).update(kind=DeploymentKind.RUN, plan=plan, check_id=None)
    for sequence, (kind, state) in enumerate([("pre_check", "succeeded"), ("rollout", "succeeded"),
                                              ("smoke", "failed"), ("watch", "failed"), ("rollout", "failed")]):
        RolloutStep.objects.create(deployment=checked, sequence=sequence, wave_position=1, wave_name="all",
                                   kind=kind, state=state, idempotency_key=f"{checked.number}-{sequence}")
    clean = deployed(estate, estate.cart, before=timedelta(hours=1))
    incident = incident_in(estate, cmdb_ci="cart")
    health = {s.deployment_id: s.parts[-1] for s in incident.suspects.all()}
    assert health[checked.pk] == {"factor": "health", "detail": "2 failed health checks", "points": 10}
    assert health[clean.pk] == {"factor": "health", "detail": "no failed health check", "points": 0}
    assert incident.suspects.get(rank=1).deployment_id == checked.pk


def test_the_window_before_the_incident_is_a_setting(estate, settings):
    settings.ITSM_SUSPECT_WINDOW_HOURS = 90
    old = deployed(estate, estate.cart, before=timedelta(hours=80))
    assert [s.deployment_id for s in incident_in(estate, cmdb_ci="cart").suspects.all()] == [old.pk]
