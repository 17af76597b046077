"""Approvals racing each other on real PostgreSQL connections: the row lock and the unique constraint decide."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import close_old_connections, connection

from governance.changes.services import approval_record, change_request_transition
from governance.core.errors import Conflict
from governance.models import Approval, ApprovalPolicy, ChangeStatusChange, PolicyRequirement
from governance.models import ChangeStatus as S
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

ROUNDS = 5


@pytest.fixture
def setting(transactional_db):
    """Roles and one policy of our own: a transactional test cannot count on the migrations' data surviving
    an earlier test's flush."""
    for role in (Role.REQUESTER, Role.CAB_MEMBER):
        Group.objects.get_or_create(name=role)
    ApprovalPolicy.objects.update(active=False)
    policy = ApprovalPolicy.objects.create(name="Race: CAB members")
    requirement = PolicyRequirement.objects.create(policy=policy, role=Group.objects.get(name=Role.CAB_MEMBER),
                                                   count=2)
    team = make_team()
    return {
        "requirement": requirement, "env": make_environment("staging", 2), "ci": make_ci(team=team),
        "requester": make_user("riya", Role.REQUESTER),
        "cab": [make_user("carlos", Role.CAB_MEMBER), make_user("chen", Role.CAB_MEMBER)],
    }


def in_review(setting):
    change = make_change(setting["requester"], cis=[setting["ci"]], environment=setting["env"])
    change = change_request_transition(actor=setting["requester"], change=change, target=S.SUBMITTED)
    assert change.status == S.CAB_REVIEW
    return change


def at_once(calls) -> list:
    """Run each call in its own thread with its own connection, released together; their results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(n, call):
        try:
            barrier.wait()
            results[n] = call()
        except BaseException as exc:  # the test inspects what each thread got
            results[n] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()
    return results


def approve(actor, change):
    return lambda: approval_record(actor=actor, change=change, decision="approve")


def transitions_to_approved(change) -> int:
    return ChangeStatusChange.objects.filter(change=change, to_status=S.APPROVED).count()


@pytest.mark.django_db(transaction=True)
def test_two_approvers_giving_the_last_two_approvals_at_once_approve_the_change_once(setting):
    for _ in range(ROUNDS):
        change = in_review(setting)
        results = at_once([approve(person, change) for person in setting["cab"]])
        assert all(isinstance(result, Approval) for result in results), results
        change.refresh_from_db()
        assert change.status == S.APPROVED
        assert Approval.objects.filter(change=change).count() == 2
        assert transitions_to_approved(change) == 1


@pytest.mark.django_db(transaction=True)
def test_two_approvers_racing_for_the_only_approval_needed_count_once(setting):
    setting["requirement"].count = 1
    setting["requirement"].save()
    for _ in range(ROUNDS):
        change = in_review(setting)
        results = at_once([approve(person, change) for person in setting["cab"]])
        approvals = [r for r in results if isinstance(r, Approval)]
        refusals = [r for r in results if isinstance(r, Conflict)]
        assert (len(approvals), len(refusals)) == (1, 1), results
        assert refusals[0].code == "not_in_review"
        change.refresh_from_db()
        assert change.status == S.APPROVED
        assert list(Approval.objects.filter(change=change)) == approvals
        assert transitions_to_approved(change) == 1


@pytest.mark.django_db(transaction=True)
def test_one_approver_submitting_twice_at_once_decides_once(setting):
    carlos = setting["cab"][0]
    for _ in range(ROUNDS):
        change = in_review(setting)
        results = at_once([approve(carlos, change), approve(carlos, change)])
        approvals = [r for r in results if isinstance(r, Approval)]
        refusals = [r for r in results if isinstance(r, Conflict)]
        assert (len(approvals), len(refusals)) == (1, 1), results
        assert refusals[0].code == "already_decided"
        assert Approval.objects.filter(change=change, approver=carlos).count() == 1
        change.refresh_from_db()
        assert change.status == S.CAB_REVIEW  # one of the two approvals it needs
