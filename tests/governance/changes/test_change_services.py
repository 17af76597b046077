"""The change services on PostgreSQL: routing, risk, policies, quorum, segregation of duties, stale approvals,
emergency retrospectives, reminders and expiry, CAB meetings and conflicts."""

from datetime import UTC, datetime, timedelta
from importlib import import_module
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.changes.notifications import approvers_notify_queued, approvers_to_notify
from governance.changes.selectors import (
    awaiting_approval_by,
    change_conflicts,
    outstanding_approvals,
    retrospectives_overdue,
)
from governance.changes.services import (
    add_business_days,
    approval_record,
    approval_reminders_send,
    approval_requests_expire,
    cab_meeting_create,
    cab_meeting_record,
    cab_meeting_refresh_agenda,
    change_request_transition,
    change_request_update,
    change_retrospective_record,
    matching_policies,
)
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.models import (
    Approval,
    ApprovalPolicy,
    ApprovalRequirement,
    ChangeRequest,
    ChangeStatusChange,
    PolicyRequirement,
)
from governance.models import ChangeStatus as S
from tests.factories import link, make_change, make_ci, make_team, make_template, make_user
from tests.governance.helpers import status_of, submit

pytestmark = pytest.mark.django_db

NORMAL_CAB = "Normal changes: CAB review"
HIGH_RISK_PROD = "High risk in production"
SOX = "SOX scoped systems"
EMERGENCY_CAB = "Emergency CAB"


# --- builders ----------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def people(db):
    def person(name, *roles):
        return make_user(name, *roles, email=f"{name}@bank.example")

    return SimpleNamespace(
        requester=person("riya", "requester"),
        cab1=person("carlos", "cab_member"), cab2=person("chen", "cab_member"),
        sre=person("sam", "sre"), owner=person("bola", "business_owner"),
        compliance=person("claire", "compliance_officer"),
        release_manager=person("rachel", "release_manager"),
        outsider=person("olga"),
    )


def needs(change: ChangeRequest) -> dict[str, tuple[int, list[str]]]:
    change.refresh_from_db()
    return {r.role.name: (r.count, r.policies)
            for r in ApprovalRequirement.objects.filter(change=change, revision=change.revision)}


def moves(change: ChangeRequest) -> list[tuple[str, str]]:
    return list(ChangeStatusChange.objects.filter(change=change).values_list("from_status", "to_status"))


def last_move(change: ChangeRequest) -> ChangeStatusChange:
    return ChangeStatusChange.objects.filter(change=change).last()


def factor(change: ChangeRequest, name: str) -> dict:
    change.refresh_from_db()
    return next(f for f in change.risk_factors if f["factor"] == name)


def only_policies(*specs) -> list[ApprovalPolicy]:
    """Replace the default policies by these: (name, requirements, conditions) each."""
    ApprovalPolicy.objects.update(active=False)
    made = []
    for name, requirements, conditions in specs:
        environments = conditions.pop("environments", [])
        policy = ApprovalPolicy.objects.create(name=name, **conditions)
        policy.environments.set(environments)
        for role, count in requirements.items():
            PolicyRequirement.objects.create(policy=policy, role=Group.objects.get(name=role), count=count)
        made.append(policy)
    return made


def notifications(callbacks) -> list[tuple]:
    """The approvers_notify tasks queued for after the commit, as (change_id, kind, user_ids)."""
    return [tuple(cb.args) for cb in callbacks
            if getattr(getattr(cb, "func", None), "__self__", None) is not None
            and cb.func.__self__.name == "governance.tasks.approvers_notify"]


def run_queued(callbacks) -> None:
    """Run each queued notification task here and now, as a worker would."""
    for args in notifications(callbacks):
        approvers_notify_queued(*args)


def recipients() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


# --- routing on submit -------------------------------------------------------------------------------------

def test_a_normal_change_goes_to_cab_review_with_the_default_cab_requirement(people, envs, team,
                                                                                django_capture_on_commit_callbacks):
    ci = make_ci("statements", team=team, criticality=3)
    change = make_change(people.requester, cis=[ci], environment=envs.staging)
    with django_capture_on_commit_callbacks() as callbacks:
        change = submit(change)
    assert change.status == S.CAB_REVIEW
    assert needs(change) == {"cab_member": (1, [NORMAL_CAB])}
    assert moves(change) == [(S.DRAFT, S.SUBMITTED), (S.SUBMITTED, S.ASSESSED), (S.ASSESSED, S.CAB_REVIEW)]
    first, *system = ChangeStatusChange.objects.filter(change=change)
    assert first.actor == people.requester
    assert all(m.actor is None for m in system)
    assert system[-1].reason == "awaiting approvals"
    assert change.review_requested_at is not None
    assert notifications(callbacks) == [(change.pk, "review", None)]
    run_queued(callbacks)
    assert recipients() == ["carlos@bank.example", "chen@bank.example"]
    assert mail.outbox[0].subject == f"Approval needed: {change.number} {change.title}"


def test_a_risky_sox_production_change_needs_every_default_role(people, envs, team):
    ci = make_ci("ledger", team=team, criticality=1, sox_scoped=True)
    change = submit(make_change(people.requester, cis=[ci], environment=envs.prod))
    assert change.risk_level == "high"
    assert needs(change) == {
        "business_owner": (1, [HIGH_RISK_PROD]), "cab_member": (1, [NORMAL_CAB]),
        "compliance_officer": (1, [SOX]), "sre": (1, [HIGH_RISK_PROD]),
    }


def test_an_emergency_change_follows_only_the_emergency_cab_policy(people, envs, team):
    ci = make_ci("ledger", team=team, criticality=1, sox_scoped=True)
    change = submit(make_change(people.requester, cis=[ci], environment=envs.prod, change_type="emergency"))
    assert change.status == S.CAB_REVIEW
    assert (change.risk_level, change.risk_score) == ("high", 60)  # tier 1, production, emergency
    assert needs(change) == {"cab_member": (1, [EMERGENCY_CAB])}


def test_a_standard_change_from_a_template_is_approved_without_cab(people, envs, team,
                                                                  django_capture_on_commit_callbacks):
    template = make_template("Rotate TLS certificates")
    ci = make_ci("edge-lb", team=team, criticality=1, sox_scoped=True)
    change = make_change(people.requester, cis=[ci], environment=envs.prod, change_type="standard",
                         template=template, backout_plan="")
    with django_capture_on_commit_callbacks() as callbacks:
        change = submit(change)
    assert change.status == S.APPROVED
    assert change.approved_at is not None
    assert needs(change) == {}
    assert moves(change)[-1] == (S.ASSESSED, S.APPROVED)
    assert last_move(change).reason == "pre-approved standard change: Rotate TLS certificates, version 1"
    assert change.template_version == 1
    assert notifications(callbacks) == []


def test_a_standard_change_without_a_template_cannot_be_submitted(people, envs, team):
    change = make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging,
                         change_type="standard")
    with pytest.raises(Conflict, match="a standard change template"):
        submit(change)
    assert status_of(change) == S.DRAFT


def test_a_change_no_policy_applies_to_is_approved_and_the_reason_recorded(people, envs, team):
    ApprovalPolicy.objects.update(active=False)
    change = submit(make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging))
    assert change.status == S.APPROVED
    assert needs(change) == {}
    assert moves(change)[-1] == (S.ASSESSED, S.APPROVED)
    assert last_move(change).reason == "no approval policy applies"


def test_only_the_requester_submits_and_an_incomplete_change_stays_a_draft(people, envs, team):
    change = make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging)
    with pytest.raises(Conflict, match="Only the requester"):
        change_request_transition(actor=people.cab1, change=change, target=S.SUBMITTED)
    change.affected_cis.clear()
    with pytest.raises(Conflict, match=r"^Before submitting, add affected CIs\.$"):
        submit(change)
    assert status_of(change) == S.DRAFT
    assert moves(change) == []


# --- risk ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tier", "points"), [(1, 30), (2, 20), (3, 10), (4, 0)])
def test_the_most_critical_affected_ci_sets_the_criticality_points(people, envs, team, tier, points):
    cis = [make_ci(team=team, criticality=4), make_ci(team=team, criticality=tier)]
    change = submit(make_change(people.requester, cis=cis, environment=envs.staging))
    assert factor(change, "criticality") == {"factor": "criticality", "points": points,
                                             "detail": f"most critical affected CI is tier {tier}"}


@pytest.mark.parametrize(("dependents", "points"), [(0, 0), (1, 5), (9, 5), (10, 10), (12, 10)])
def test_blast_radius_counts_the_cis_that_depend_on_the_affected_ones_transitively(people, envs, team,
                                                                                    dependents, points):
    root = make_ci("core-db", team=team, criticality=4)
    previous = root
    for n in range(dependents):  # a chain: each depends on the one before, so only the first is direct
        node = make_ci(f"svc-{n}", team=team, criticality=4)
        link(node, previous)
        previous = node
    make_ci("unrelated", team=team)
    change = submit(make_change(people.requester, cis=[root], environment=envs.staging))
    wording = f"{dependents} CIs depend" if dependents != 1 else "1 CI depends"
    assert factor(change, "blast radius") == {
        "factor": "blast radius", "points": points, "detail": f"{wording} on the affected ones"}
    assert len(change.impacted_ci_ids) == dependents + 1
    assert root.pk in change.impacted_ci_ids


def test_a_production_environment_adds_risk(people, envs, team):
    ci = make_ci(team=team, criticality=4)
    prod = submit(make_change(people.requester, cis=[ci], environment=envs.prod))
    staging = submit(make_change(people.requester, cis=[ci], environment=envs.staging))
    assert factor(prod, "environment")["points"] == 15
    assert factor(staging, "environment") == {"factor": "environment", "detail": "not production", "points": 0}
    assert prod.risk_score == staging.risk_score + 15


def test_recent_failures_of_changes_to_the_same_cis_add_risk(people, envs, team):
    ci, other = make_ci(team=team, criticality=4), make_ci(team=team, criticality=4)

    def finished(status, cis, days_ago=1):
        old = make_change(people.requester, cis=cis, environment=envs.staging, title=f"old {status}")
        ChangeRequest.objects.filter(pk=old.pk).update(status=status)
        ChangeStatusChange.objects.create(change=old, from_status=S.IMPLEMENTING, to_status=status)
        ChangeRequest.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=days_ago))

    finished(S.FAILED, [ci])
    finished(S.COMPLETED, [ci])
    finished(S.ROLLED_BACK, [ci], days_ago=120)  # too long ago to count
    finished(S.FAILED, [other])  # another CI
    change = submit(make_change(people.requester, cis=[ci], environment=envs.staging))
    assert factor(change, "recent failures") == {
        "factor": "recent failures", "points": 10,
        "detail": "1 of 2 recent changes to these CIs failed or were rolled back"}
    quiet = submit(make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging))
    assert factor(quiet, "recent failures") == {"factor": "recent failures", "points": 0,
                                                "detail": "no recent changes to these CIs"}


def test_missing_test_evidence_and_backout_plan_add_risk(people, envs, team):
    ci = make_ci(team=team, criticality=4)
    tested = submit(make_change(people.requester, cis=[ci], environment=envs.staging))
    untested = submit(make_change(people.requester, cis=[ci], environment=envs.staging, test_evidence="  "))
    assert factor(tested, "test evidence")["points"] == 0
    assert factor(untested, "test evidence") == {"factor": "test evidence", "detail": "missing", "points": 10}
    assert factor(tested, "backout plan") == {"factor": "backout plan", "detail": "present", "points": 0}
    template = make_template("Restart a pod")
    no_backout = submit(make_change(people.requester, cis=[ci], environment=envs.staging, change_type="standard",
                                    template=template, backout_plan=""))
    assert factor(no_backout, "backout plan") == {"factor": "backout plan", "detail": "missing", "points": 10}


@pytest.mark.parametrize(("tier", "env", "change_type", "test_evidence", "score", "level"), [
    (4, "staging", "normal", "ok", 5, "low"),  # type 5
    (2, "staging", "normal", "ok", 25, "medium"),  # 20 + 5
    (1, "prod", "normal", "ok", 50, "high"),  # 30 + 5 + 15
    (1, "prod", "emergency", "", 70, "high"),  # 30 + 15 + 15 + 10
    (2, "prod", "normal", "", 50, "high"),  # 20 + 5 + 15 + 10
])
def test_the_score_sets_the_level(people, envs, team, tier, env, change_type, test_evidence, score, level):
    ci = make_ci(team=team, criticality=tier)
    change = submit(make_change(people.requester, cis=[ci], environment=getattr(envs, env),
                                change_type=change_type, test_evidence=test_evidence))
    assert (change.risk_score, change.risk_level) == (score, level)
    assert change.risk_score == sum(f["points"] for f in change.risk_factors)


def test_a_critical_level_from_many_factors(people, envs, team):
    ci = make_ci("core", team=team, criticality=1)
    for n in range(10):
        link(make_ci(f"dep-{n}", team=team), ci)
    change = submit(make_change(people.requester, cis=[ci], environment=envs.prod, change_type="emergency",
                                test_evidence=""))
    assert (change.risk_score, change.risk_level) == (80, "critical")  # 30 + 10 + 15 + 15 + 10


@pytest.mark.parametrize(("tier", "env", "triggers", "strategy", "why"), [
    (1, "staging", True, "canary", "expose a small share first"),  # tier 1 with rollback triggers
    (1, "staging", False, "blue_green", "keep the old version ready"),  # tier 1 without triggers
    (2, "staging", False, "blue_green", "business critical"),
    (3, "staging", False, "rolling", "low criticality"),
    (4, "prod", True, "rolling", "low criticality"),  # low risk even in production
])
def test_the_recommended_strategy_follows_criticality_risk_and_rollback_triggers(people, envs, team, tier, env,
                                                                                  triggers, strategy, why):
    ci = make_ci(team=team, criticality=tier)
    extra = {"rollback_error_rate_pct": 2} if triggers else {}
    change = submit(make_change(people.requester, cis=[ci], environment=getattr(envs, env), **extra))
    assert change.recommended_strategy == strategy
    assert change.recommended_strategy_reason  # kept with the recommendation, as the change page shows it
    assert why in change.recommended_strategy_reason


def test_a_high_risk_change_without_triggers_is_recommended_blue_green(people, envs, team):
    ci = make_ci(team=team, criticality=3)
    change = submit(make_change(people.requester, cis=[ci], environment=envs.prod, change_type="emergency",
                                test_evidence=""))
    assert change.risk_level == "high"  # 10 + 15 + 15 + 10
    assert change.recommended_strategy == "blue_green"


# --- policy matching -------------------------------------------------------------------------------------------

def draft(people, envs, team, *, env="staging", change_type="normal", risk_level="low", ci=None, cis=None):
    """An unsubmitted change with a risk level set by hand, for matching_policies."""
    if cis is None:
        cis = [make_ci(team=team, **(ci or {}))]
    change = make_change(people.requester, cis=cis, environment=getattr(envs, env) if env else None,
                         change_type=change_type)
    change.risk_level = risk_level
    return change


CONDITIONS = [  # (policy conditions, a change that matches, one that does not)
    ({"risk_levels": ["high", "critical"]}, {"risk_level": "critical"}, {"risk_level": "medium"}),
    ({"change_types": ["emergency"]}, {"change_type": "emergency"}, {"change_type": "normal"}),
    ({}, {"change_type": "normal"}, {"change_type": "emergency"}),  # no types named: normal changes only
    ({"production_only": True}, {"env": "prod"}, {"env": "staging"}),
    ({"production_only": True}, {"env": "prod"}, {"env": None}),
    ({"environments": ["staging"]}, {"env": "staging"}, {"env": "prod"}),
    ({"max_criticality": 2}, {"ci": {"criticality": 2}}, {"ci": {"criticality": 3}}),
    ({"max_criticality": 2}, {"ci": {"criticality": 1}}, {"cis": []}),
    ({"tags": ["database", "kafka"]}, {"ci": {"tags": ["kafka", "x"]}}, {"ci": {"tags": ["x"]}}),
    ({"sox_scoped": True}, {"ci": {"sox_scoped": True}}, {"ci": {"pci": True, "phi": True}}),
    ({"phi": True}, {"ci": {"phi": True}}, {"ci": {"sox_scoped": True, "pci": True}}),
    ({"pci": True}, {"ci": {"pci": True}}, {"ci": {"sox_scoped": True, "phi": True}}),
]


@pytest.mark.parametrize(("conditions", "matches", "misses"), CONDITIONS,
                         ids=[f"{'-'.join(c[0]) or 'types-default'}-{n}" for n, c in enumerate(CONDITIONS)])
def test_a_policy_applies_only_when_the_change_meets_its_condition(people, envs, team, conditions, matches,
                                                                   misses):
    conditions = dict(conditions)
    if "environments" in conditions:
        conditions["environments"] = [getattr(envs, name) for name in conditions["environments"]]
    only_policies(("Under test", {"cab_member": 1}, conditions))
    assert [p.name for p in matching_policies(draft(people, envs, team, **matches))] == ["Under test"]
    assert matching_policies(draft(people, envs, team, **misses)) == []


def test_a_policy_needs_every_one_of_its_conditions(people, envs, team):
    only_policies(("Prod SOX", {"cab_member": 1}, {"production_only": True, "sox_scoped": True}))
    assert matching_policies(draft(people, envs, team, env="prod", ci={"sox_scoped": True}))
    assert not matching_policies(draft(people, envs, team, env="staging", ci={"sox_scoped": True}))
    assert not matching_policies(draft(people, envs, team, env="prod", ci={"sox_scoped": False}))


def test_an_inactive_policy_never_applies(people, envs, team):
    policy, = only_policies(("Off", {"cab_member": 1}, {}))
    policy.active = False
    policy.save()
    assert matching_policies(draft(people, envs, team)) == []


def test_requirements_of_several_policies_merge_by_role_with_the_largest_count(people, envs, team):
    only_policies(("A: CAB and SRE", {"cab_member": 1, "sre": 1}, {}),
                  ("B: two CAB members", {"cab_member": 2}, {}),
                  ("C: never", {"business_owner": 1}, {"change_types": ["emergency"]}))
    change = submit(make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging))
    assert needs(change) == {"cab_member": (2, ["A: CAB and SRE", "B: two CAB members"]),
                             "sre": (1, ["A: CAB and SRE"])}


# --- quorum ----------------------------------------------------------------------------------------------------

def in_review(people, envs, team, **fields) -> ChangeRequest:
    return submit(make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging, **fields))


def test_two_policies_asking_the_same_role_need_the_larger_count_not_the_sum(people, envs, team):
    only_policies(("A", {"cab_member": 1}, {}), ("B", {"cab_member": 2}, {}))
    change = in_review(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    assert status_of(change) == S.CAB_REVIEW
    assert [(o.role, o.needed, o.given) for o in outstanding_approvals(change)] == [("cab_member", 2, 1)]
    approval_record(actor=people.cab2, change=change, decision="approve")
    assert status_of(change) == S.APPROVED
    assert last_move(change).reason == "every required approval given"


def test_an_approver_holding_two_needed_roles_counts_once(people, envs, team):
    only_policies(("A", {"cab_member": 1, "sre": 1}, {}))
    both = make_user("bo", "cab_member", "sre")
    change = in_review(people, envs, team)
    approval = approval_record(actor=both, change=change, decision="approve")
    assert approval.role.name == "cab_member"
    assert status_of(change) == S.CAB_REVIEW
    assert {o.role: o.given for o in outstanding_approvals(change)} == {"cab_member": 1, "sre": 0}
    with pytest.raises(Conflict) as refused:
        approval_record(actor=both, change=change, decision="approve")
    assert refused.value.code == "already_decided"
    assert Approval.objects.filter(change=change).count() == 1
    approval_record(actor=people.sre, change=change, decision="approve")
    assert status_of(change) == S.APPROVED


def test_an_approval_whose_role_is_already_satisfied_is_refused(people, envs, team):
    only_policies(("A", {"cab_member": 1, "sre": 1}, {}))
    change = in_review(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    with pytest.raises(Forbidden) as refused:
        approval_record(actor=people.cab2, change=change, decision="approve")
    assert refused.value.code == "role_not_needed"
    assert refused.value.message == "Your approval cannot count: the change still needs sre."


def test_approvals_of_a_stale_revision_do_not_count(people, envs, team):
    only_policies(("B", {"cab_member": 2}, {}))
    change = in_review(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    later = change.planned_start + timedelta(days=1)
    change_request_update(actor=people.requester, change=change, planned_start=later,
                          planned_end=later + timedelta(hours=2))
    change.refresh_from_db()
    assert change.revision == 2
    assert status_of(change) == S.CAB_REVIEW
    assert [(o.needed, o.given) for o in outstanding_approvals(change)] == [(2, 0)]
    approval_record(actor=people.cab2, change=change, decision="approve")
    assert status_of(change) == S.CAB_REVIEW  # one of two at the new revision
    approval_record(actor=people.cab1, change=change, decision="approve")  # may decide again on the new revision
    assert status_of(change) == S.APPROVED
    assert sorted(Approval.objects.filter(change=change).values_list("revision", flat=True)) == [1, 2, 2]


def test_a_rejection_after_partial_approvals_rejects(people, envs, team):
    only_policies(("B", {"cab_member": 2}, {}))
    change = in_review(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    approval_record(actor=people.cab2, change=change, decision="reject", comment="no rollback tested")
    assert status_of(change) == S.REJECTED
    move = last_move(change)
    assert (move.from_status, move.to_status, move.actor) == (S.CAB_REVIEW, S.REJECTED, None)
    assert move.reason == "rejected by chen: no rollback tested"
    with pytest.raises(Conflict) as refused:
        approval_record(actor=people.sre, change=change, decision="approve")
    assert refused.value.code == "not_in_review"


def test_an_unknown_decision_is_invalid_input(people, envs, team):
    change = in_review(people, envs, team)
    with pytest.raises(InvalidInput):
        approval_record(actor=people.cab1, change=change, decision="maybe")
    assert not Approval.objects.exists()


# --- segregation of duties -------------------------------------------------------------------------------------

@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_requester_cannot_decide_on_their_own_change_even_as_a_cab_member(envs, team, decision):
    both = make_user("riya", "requester", "cab_member")
    change = submit(make_change(both, cis=[make_ci(team=team)], environment=envs.staging))
    with pytest.raises(Forbidden) as refused:
        approval_record(actor=both, change=change, decision=decision)
    assert refused.value.code == "segregation_of_duties"
    assert refused.value.message == "You requested this change: someone else must approve it."
    assert not Approval.objects.exists()
    assert status_of(change) == S.CAB_REVIEW


def test_the_implementer_cannot_approve(people, envs, team):
    change = in_review(people, envs, team, implementer=people.cab1)
    with pytest.raises(Forbidden, match="You will implement this change"):
        approval_record(actor=people.cab1, change=change, decision="approve")
    assert not Approval.objects.exists()


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_user_without_an_approver_role_cannot_decide(people, envs, team, decision):
    change = in_review(people, envs, team)
    for nobody in (people.outsider, people.release_manager, people.sre):  # sre is not needed by this change
        with pytest.raises(Forbidden) as refused:
            approval_record(actor=nobody, change=change, decision=decision)
        assert refused.value.code == "role_not_needed"
    assert not Approval.objects.exists()
    assert status_of(change) == S.CAB_REVIEW


def test_a_role_held_for_a_team_counts_only_for_changes_to_that_teams_cis(people, envs):
    payments, cards = make_team("payments"), make_team("cards")
    team_cab = make_user("tara", email="tara@bank.example")
    assign_perm("cmdb.approve_as_cab_member", team_cab, payments)
    ours = submit(make_change(people.requester, cis=[make_ci("payments-api", team=payments)],
                              environment=envs.staging))
    theirs = submit(make_change(people.requester, cis=[make_ci("card-auth", team=cards)],
                                environment=envs.staging))
    assert list(ChangeRequest.objects.filter(awaiting_approval_by(team_cab))) == [ours]
    with pytest.raises(Forbidden) as refused:
        approval_record(actor=team_cab, change=theirs, decision="approve")
    assert refused.value.code == "role_not_needed"
    approval = approval_record(actor=team_cab, change=ours, decision="approve")
    assert approval.role.name == "cab_member"
    assert status_of(ours) == S.APPROVED
    assert status_of(theirs) == S.CAB_REVIEW


def test_awaiting_approval_by_leaves_out_own_and_decided_changes(people, envs, team):
    only_policies(("B", {"cab_member": 2}, {}))
    change = in_review(people, envs, team)
    assert list(ChangeRequest.objects.filter(awaiting_approval_by(people.cab1))) == [change]
    assert list(ChangeRequest.objects.filter(awaiting_approval_by(people.sre))) == []
    approval_record(actor=people.cab1, change=change, decision="approve")
    assert list(ChangeRequest.objects.filter(awaiting_approval_by(people.cab1))) == []
    assert list(ChangeRequest.objects.filter(awaiting_approval_by(people.cab2))) == [change]


# --- stale approvals -----------------------------------------------------------------------------------------

def approved(people, envs, team, **fields) -> ChangeRequest:
    change = in_review(people, envs, team, **fields)
    approval_record(actor=people.cab1, change=change, decision="approve")
    change.refresh_from_db()
    assert change.status == S.APPROVED
    return change


def test_moving_the_window_of_an_approved_change_sends_it_back_to_review(people, envs, team,
                                                                          django_capture_on_commit_callbacks):
    change = approved(people, envs, team)
    later = change.planned_start + timedelta(days=1)
    with django_capture_on_commit_callbacks() as callbacks:
        change_request_update(actor=people.requester, change=change, planned_start=later,
                              planned_end=later + timedelta(hours=2))
    change.refresh_from_db()
    assert (change.status, change.revision) == (S.CAB_REVIEW, 2)
    move = last_move(change)
    assert (move.from_status, move.to_status, move.actor) == (S.APPROVED, S.CAB_REVIEW, people.requester)
    assert move.reason == "approvals went stale: planned_start, planned_end changed"
    assert needs(change) == {"cab_member": (1, [NORMAL_CAB])}
    assert (change.pk, "stale", [people.cab1.pk]) in notifications(callbacks)
    run_queued(callbacks)
    stale = [m for m in mail.outbox if m.subject.startswith("Your approval no longer counts")]
    assert [m.to for m in stale] == [["carlos@bank.example"]]
    assert stale[0].subject == f"Your approval no longer counts: {change.number} {change.title} changed"


def test_the_stale_notice_sent_by_the_notifications_module_reaches_the_earlier_approvers(people, envs, team):
    from governance.changes.notifications import approvers_notify as notify

    change = approved(people, envs, team)
    sent = notify(change, "stale", [people.cab1.pk, people.outsider.pk])
    assert sent == 2
    assert recipients() == ["carlos@bank.example", "olga@bank.example"]


def test_moving_a_scheduled_change_to_another_environment_sends_it_back_to_review(people, envs, team):
    change = approved(people, envs, team)
    change_request_transition(actor=people.release_manager, change=change, target=S.SCHEDULED)
    change_request_update(actor=people.release_manager, change=change, environment=envs.prod)
    change.refresh_from_db()
    assert (change.status, change.revision) == (S.CAB_REVIEW, 2)
    move = last_move(change)
    assert (move.from_status, move.to_status, move.actor) == (S.SCHEDULED, S.CAB_REVIEW, people.release_manager)
    assert move.reason == "approvals went stale: environment changed"
    assert factor(change, "environment")["points"] == 15  # assessed again


def test_changing_the_cis_of_an_approved_change_sends_it_back_to_review(people, envs, team):
    change = approved(people, envs, team)
    other = make_ci("ledger", team=team)
    dependent = make_ci("ledger-ui", team=team)
    link(dependent, other)
    change_request_update(actor=people.requester, change=change, cis=[other])
    change.refresh_from_db()
    assert (change.status, change.revision) == (S.CAB_REVIEW, 2)
    assert last_move(change).reason == "approvals went stale: affected CIs changed"
    assert sorted(change.impacted_ci_ids) == sorted([other.pk, dependent.pk])


def test_pinning_another_build_or_marking_a_rollback_sends_an_approved_change_back_to_review(people, envs, team):
    change = approved(people, envs, team)
    change_request_update(actor=people.requester, change=change, pinned_digests=["sha256:" + "1" * 64])
    change.refresh_from_db()
    assert (change.status, change.revision) == (S.CAB_REVIEW, 2)
    assert last_move(change).reason == "approvals went stale: pinned_digests changed"
    approval_record(actor=people.cab1, change=change, decision="approve")
    change_request_update(actor=people.requester, change=change, rolls_back=True)
    change.refresh_from_db()
    assert (change.status, change.revision) == (S.CAB_REVIEW, 3)


def test_a_pinned_digest_must_be_a_digest(people, envs, team):
    change = approved(people, envs, team)
    with pytest.raises(InvalidInput) as refused:
        change_request_update(actor=people.requester, change=change, pinned_digests=["latest"])
    assert refused.value.field == "pinned_digests"
    change.refresh_from_db()
    assert (change.pinned_digests, change.status) == ([], S.APPROVED)


def test_editing_the_title_or_resaving_the_same_window_keeps_the_approval(people, envs, team):
    change = approved(people, envs, team)
    change_request_update(actor=people.requester, change=change, title="Upgrade payments-api to 2.4",
                          planned_start=change.planned_start, planned_end=change.planned_end,
                          cis=list(change.affected_cis.all()))
    change.refresh_from_db()
    assert (change.status, change.revision, change.title) == (S.APPROVED, 1, "Upgrade payments-api to 2.4")


def test_only_the_requester_or_a_release_manager_edits_and_never_once_implemented(people, envs, team):
    change = approved(people, envs, team)
    with pytest.raises(Forbidden):
        change_request_update(actor=people.cab1, change=change, title="mine now")
    with pytest.raises(Conflict, match="fixed once the change is submitted"):
        change_request_update(actor=people.requester, change=change, backout_plan="")
    ChangeRequest.objects.filter(pk=change.pk).update(status=S.COMPLETED)
    with pytest.raises(Conflict, match="can no longer be edited"):
        change_request_update(actor=people.requester, change=change, title="too late")


def test_a_submitted_change_cannot_lose_its_window_environment_or_cis(people, envs, team):
    change = approved(people, envs, team)
    for fields in ({"planned_start": None}, {"planned_end": None}, {"environment": None}, {"cis": []}):
        with pytest.raises(InvalidInput):
            change_request_update(actor=people.requester, change=change, **fields)
    change.refresh_from_db()
    assert (change.status, change.revision) == (S.APPROVED, 1)
    assert change.planned_start is not None and change.environment == envs.staging
    assert change.affected_cis.exists()


# --- emergency changes and their retrospective -----------------------------------------------------------------

@pytest.mark.parametrize(("start", "days", "due"), [
    (datetime(2024, 6, 14, 16, tzinfo=UTC), 2, datetime(2024, 6, 18, 16, tzinfo=UTC)),  # Friday -> Tuesday
    (datetime(2024, 6, 13, 16, tzinfo=UTC), 2, datetime(2024, 6, 17, 16, tzinfo=UTC)),  # Thursday -> Monday
    (datetime(2024, 6, 12, 9, tzinfo=UTC), 2, datetime(2024, 6, 14, 9, tzinfo=UTC)),  # Wednesday -> Friday
    (datetime(2024, 6, 15, 11, tzinfo=UTC), 1, datetime(2024, 6, 17, 11, tzinfo=UTC)),  # Saturday -> Monday
    (datetime(2024, 6, 16, 11, tzinfo=UTC), 1, datetime(2024, 6, 17, 11, tzinfo=UTC)),  # Sunday -> Monday
    (datetime(2024, 6, 10, 8, tzinfo=UTC), 5, datetime(2024, 6, 17, 8, tzinfo=UTC)),  # a working week
    (datetime(2024, 6, 14, 16, tzinfo=UTC), 0, datetime(2024, 6, 14, 16, tzinfo=UTC)),
])
def test_business_days_skip_weekends(start, days, due):
    assert add_business_days(start, days) == due


def emergency(people, envs, team, **fields) -> ChangeRequest:
    return submit(make_change(people.requester, cis=[make_ci(team=team)], environment=envs.prod,
                              change_type="emergency", **fields))


def test_an_approved_emergency_change_owes_a_retrospective_after_the_set_business_days(people, envs, team,
                                                                                       settings):
    change = emergency(people, envs, team)
    assert change.retrospective_due is None
    approval_record(actor=people.cab1, change=change, decision="approve")
    change.refresh_from_db()
    assert change.status == S.APPROVED
    assert change.retrospective_due == add_business_days(change.approved_at,
                                                         settings.EMERGENCY_RETROSPECTIVE_BUSINESS_DAYS)
    assert change.retrospective_due > change.approved_at
    assert not change.retrospective_overdue

    settings.EMERGENCY_RETROSPECTIVE_BUSINESS_DAYS = 5
    later = emergency(people, envs, team)
    approval_record(actor=people.cab1, change=later, decision="approve")
    later.refresh_from_db()
    assert later.retrospective_due == add_business_days(later.approved_at, 5)


def test_a_normal_change_owes_no_retrospective(people, envs, team):
    change = approved(people, envs, team)
    assert change.retrospective_due is None
    with pytest.raises(Conflict, match="Only an approved emergency change"):
        change_retrospective_record(actor=people.cab2, change=change, notes="fine")


def test_an_emergency_change_past_its_due_date_is_listed_overdue_until_reviewed(people, envs, team):
    change = emergency(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    assert list(retrospectives_overdue()) == []
    ChangeRequest.objects.filter(pk=change.pk).update(retrospective_due=timezone.now() - timedelta(hours=1))
    assert list(retrospectives_overdue()) == [change]
    change_retrospective_record(actor=people.cab2, change=change, notes="root cause fixed")
    assert list(retrospectives_overdue()) == []


def test_the_retrospective_is_recorded_once_by_someone_other_than_the_requester(people, envs, team):
    requester_cab = make_user("rc", "requester", "cab_member")
    change = submit(make_change(requester_cab, cis=[make_ci(team=team)], environment=envs.prod,
                                change_type="emergency"))
    with pytest.raises(Conflict, match="Only an approved emergency change"):  # not approved yet
        change_retrospective_record(actor=people.cab1, change=change, notes="early")
    approval_record(actor=people.cab1, change=change, decision="approve")
    with pytest.raises(Forbidden, match="You requested this change"):
        change_retrospective_record(actor=requester_cab, change=change, notes="all good")
    with pytest.raises(Forbidden, match="A CAB member or release manager"):
        change_retrospective_record(actor=people.outsider, change=change, notes="all good")
    with pytest.raises(InvalidInput):
        change_retrospective_record(actor=people.cab2, change=change, notes="   ")
    change_retrospective_record(actor=people.cab2, change=change, notes="patched under pressure; test added")
    change.refresh_from_db()
    assert change.retrospective_done_at is not None
    assert change.retrospective_notes == "patched under pressure; test added"
    with pytest.raises(Conflict, match="already recorded"):
        change_retrospective_record(actor=people.release_manager, change=change, notes="again")


def test_a_release_manager_may_record_the_retrospective(people, envs, team):
    change = emergency(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    change_retrospective_record(actor=people.release_manager, change=change, notes="reviewed")
    change.refresh_from_db()
    assert change.retrospective_done_at is not None


def test_an_emergency_change_runs_its_course_and_closes_only_after_its_retrospective(people, envs, team):
    change = emergency(people, envs, team, implementer=people.sre, start_in_hours=0.05)  # opens in 3 minutes
    approval_record(actor=people.cab1, change=change, decision="approve")
    change_request_transition(actor=people.release_manager, change=change, target=S.SCHEDULED)
    change_request_transition(actor=people.sre, change=change, target=S.IMPLEMENTING)
    change_request_transition(actor=people.sre, change=change, target=S.COMPLETED)
    with pytest.raises(Conflict, match="only after its retrospective review") as refused:
        change_request_transition(actor=people.release_manager, change=change, target=S.CLOSED)
    assert refused.value.code == "transition_not_allowed"
    change_retrospective_record(actor=people.cab2, change=change, notes="fine")
    change_request_transition(actor=people.release_manager, change=change, target=S.CLOSED)
    assert moves(change)[-5:] == [(S.CAB_REVIEW, S.APPROVED), (S.APPROVED, S.SCHEDULED),
                                  (S.SCHEDULED, S.IMPLEMENTING), (S.IMPLEMENTING, S.COMPLETED),
                                  (S.COMPLETED, S.CLOSED)]


# --- reminders and expiry --------------------------------------------------------------------------------------

def waiting_since(change: ChangeRequest, **ago) -> None:
    ChangeRequest.objects.filter(pk=change.pk).update(review_requested_at=timezone.now() - timedelta(**ago))


def test_a_reminder_is_claimed_once_and_reaches_the_approvers_not_the_requester(envs, team, people,
                                                                                django_capture_on_commit_callbacks):
    requester_cab = make_user("rc", "requester", "cab_member", email="rc@bank.example")
    old = submit(make_change(requester_cab, cis=[make_ci(team=team)], environment=envs.staging))
    fresh = in_review(people, envs, team)
    waiting_since(old, hours=25)
    waiting_since(fresh, hours=1)
    with django_capture_on_commit_callbacks() as callbacks:
        assert approval_reminders_send() == 1
        assert approval_reminders_send() == 0
    assert notifications(callbacks) == [(old.pk, "reminder", None)]
    run_queued(callbacks)
    assert recipients() == ["carlos@bank.example", "chen@bank.example"]
    assert "rc@bank.example" not in recipients()
    assert mail.outbox[0].subject == f"Reminder, approval still needed: {old.number} {old.title}"


def test_a_reminder_skips_those_who_decided_and_roles_already_satisfied(people, envs, team):
    only_policies(("A", {"cab_member": 2, "sre": 1}, {}))
    change = in_review(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    approval_record(actor=people.sre, change=change, decision="approve")
    other_sre = make_user("sre-2", "sre", email="sre2@bank.example")  # undecided, but the SRE role is satisfied
    waiting = [user.username for user in approvers_to_notify(change)]
    assert people.cab2.username in waiting
    assert people.cab1.username not in waiting and people.sre.username not in waiting
    assert other_sre.username not in waiting


def test_a_reminder_is_sent_again_after_another_reminder_period(people, envs, team, settings):
    change = in_review(people, envs, team)
    waiting_since(change, hours=25)
    assert approval_reminders_send() == 1
    assert approval_reminders_send(now=timezone.now() + timedelta(hours=settings.APPROVAL_REMINDER_HOURS - 1)) == 0
    assert approval_reminders_send(now=timezone.now() + timedelta(hours=settings.APPROVAL_REMINDER_HOURS + 1)) == 1


def test_no_reminder_for_a_change_no_longer_in_review(people, envs, team):
    change = approved(people, envs, team)
    waiting_since(change, days=3)
    assert approval_reminders_send() == 0


def test_an_old_approval_request_expires_back_to_draft_with_the_reason(people, envs, team, settings):
    old, recent = in_review(people, envs, team), in_review(people, envs, team)
    waiting_since(old, days=settings.APPROVAL_REQUEST_EXPIRY_DAYS + 1)
    waiting_since(recent, days=settings.APPROVAL_REQUEST_EXPIRY_DAYS - 1)
    assert approval_requests_expire() == 1
    assert approval_requests_expire() == 0
    assert (status_of(old), status_of(recent)) == (S.DRAFT, S.CAB_REVIEW)
    move = last_move(old)
    assert (move.from_status, move.to_status, move.actor) == (S.CAB_REVIEW, S.DRAFT, None)
    assert move.reason == "the approval request expired"


def test_an_expired_change_can_be_resubmitted_and_is_reviewed_afresh(people, envs, team, settings):
    only_policies(("B", {"cab_member": 2}, {}))
    change = in_review(people, envs, team)
    approval_record(actor=people.cab1, change=change, decision="approve")
    waiting_since(change, days=settings.APPROVAL_REQUEST_EXPIRY_DAYS + 1)
    approval_requests_expire()
    change = submit(change)
    assert change.status == S.CAB_REVIEW
    assert [(o.needed, o.given) for o in outstanding_approvals(change)] == [(2, 0)]  # the old approval is stale
    approval_record(actor=people.cab1, change=change, decision="approve")
    approval_record(actor=people.cab2, change=change, decision="approve")
    assert status_of(change) == S.APPROVED


# --- CAB meetings ----------------------------------------------------------------------------------------------

def test_a_cab_meeting_agenda_holds_the_changes_in_review_oldest_request_first(people, envs, team):
    first, second, third = (in_review(people, envs, team, title=f"change {n}") for n in range(3))
    waiting_since(first, hours=2)
    waiting_since(second, hours=5)
    waiting_since(third, hours=1)
    approved(people, envs, team, title="already approved")
    make_change(people.requester, title="still a draft")
    meeting = cab_meeting_create(actor=people.release_manager, title="Weekly CAB",
                                 starts_at=timezone.now() + timedelta(days=1), attendees=[people.cab1])
    agenda = list(meeting.agenda.order_by("position"))
    assert [item.change for item in agenda] == [second, first, third]
    assert [item.position for item in agenda] == [1, 2, 3]
    assert meeting.organiser == people.release_manager
    assert list(meeting.attendees.all()) == [people.cab1]


def test_refreshing_the_agenda_adds_new_changes_in_review_once(people, envs, team):
    first = in_review(people, envs, team)
    meeting = cab_meeting_create(actor=people.release_manager, title="Weekly CAB", starts_at=timezone.now())
    newcomer = in_review(people, envs, team)
    cab_meeting_refresh_agenda(actor=people.release_manager, meeting=meeting)
    cab_meeting_refresh_agenda(actor=people.release_manager, meeting=meeting)
    assert list(meeting.agenda.order_by("position").values_list("change", "position")) == [
        (first.pk, 1), (newcomer.pk, 2)]


def test_the_meeting_records_outcomes_minutes_and_attendees(people, envs, team):
    change = in_review(people, envs, team)
    meeting = cab_meeting_create(actor=people.release_manager, title="Weekly CAB", starts_at=timezone.now())
    other = cab_meeting_create(actor=people.release_manager, title="Other CAB", starts_at=timezone.now())
    item, = meeting.agenda.all()
    foreign, = other.agenda.all()
    cab_meeting_record(actor=people.release_manager, meeting=meeting, minutes="Quorum reached.",
                       attendees=[people.cab1, people.cab2],
                       outcomes={item.pk: ("approved", "go ahead"), foreign.pk: ("rejected", "not ours")})
    meeting.refresh_from_db()
    item.refresh_from_db()
    foreign.refresh_from_db()
    assert meeting.minutes == "Quorum reached."
    assert set(meeting.attendees.all()) == {people.cab1, people.cab2}
    assert (item.change, item.outcome, item.notes) == (change, "approved", "go ahead")
    assert (foreign.outcome, foreign.notes) == ("", "")  # another meeting's item is left alone


def test_a_requester_cannot_organise_or_minute_a_cab_meeting(people, envs, team):
    in_review(people, envs, team)
    for nobody in (people.requester, people.cab1):
        with pytest.raises(Forbidden):
            cab_meeting_create(actor=nobody, title="My CAB", starts_at=timezone.now())
    meeting = cab_meeting_create(actor=people.release_manager, title="Weekly CAB", starts_at=timezone.now())
    with pytest.raises(Forbidden):
        cab_meeting_refresh_agenda(actor=people.requester, meeting=meeting)
    with pytest.raises(Forbidden):
        cab_meeting_record(actor=people.requester, meeting=meeting, minutes="hijacked")
    meeting.refresh_from_db()
    assert meeting.minutes == ""


def test_a_meeting_needs_a_title(people):
    with pytest.raises(InvalidInput):
        cab_meeting_create(actor=people.release_manager, title="  ", starts_at=timezone.now())


# --- conflicts -------------------------------------------------------------------------------------------------

def test_overlapping_windows_on_shared_cis_or_their_blast_radius_conflict(people, envs, team):
    core, app, elsewhere = make_ci("core-db", team=team), make_ci("app", team=team), make_ci("other", team=team)
    link(app, core)  # app depends on core: a change to core reaches app

    def change(cis, start, hours=2, submitted=True):
        made = make_change(people.requester, cis=cis, environment=envs.staging, start_in_hours=start, hours=hours,
                           title=f"{[c.name for c in cis]} at +{start}h")
        return submit(made) if submitted else made

    base = change([core], 48)
    overlapping = change([core], 49)
    touching = change([core], 50)  # starts as base ends: no overlap
    later = change([core], 60)
    in_radius = change([app], 47)
    unrelated = change([elsewhere], 48)
    draft_only = change([core], 48, submitted=False)
    assert set(change_conflicts(base)) == {overlapping, in_radius}
    assert base in set(change_conflicts(in_radius))  # its CI is in base's blast radius
    assert set(change_conflicts(unrelated)) == set()
    assert later not in set(change_conflicts(overlapping))
    assert touching in set(change_conflicts(overlapping))
    assert draft_only not in set(change_conflicts(base))
    assert base in set(change_conflicts(draft_only))  # an unassessed change compares by its own CIs


def test_a_change_without_a_window_has_no_conflicts(people, envs, team):
    ci = make_ci(team=team)
    in_review(people, envs, team)
    undated = make_change(people.requester, cis=[ci], planned_start=None, planned_end=None)
    assert list(change_conflicts(undated)) == []


def test_changes_assessed_before_the_reason_was_kept_get_it_from_the_migration(people, envs, team):
    migration = ("governance", "0017_change_strategy_reason")
    apps = MigrationLoader(connection).project_state(migration).apps  # the models as the migration sees them
    backfill = import_module("governance.migrations.0017_change_strategy_reason").reasons_of_assessed_changes
    change = submit(make_change(people.requester, cis=[make_ci(team=team, criticality=2)], environment=envs.staging))
    kept = change.recommended_strategy_reason
    untouched = make_change(people.requester, cis=[make_ci(team=team)], environment=envs.staging)
    ChangeRequest.objects.filter(pk=change.pk).update(recommended_strategy_reason="")
    backfill(apps, None)
    assert ChangeRequest.objects.get(pk=change.pk).recommended_strategy_reason == kept != ""
    assert ChangeRequest.objects.get(pk=untouched.pk).recommended_strategy_reason == ""  # never assessed
