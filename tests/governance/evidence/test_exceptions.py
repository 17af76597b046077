"""The exceptions of a period and the control tests over it: exactly the planted ones, each with its evidence."""

import pytest
from django.contrib.auth.models import Group

from governance.audit.ledger import audit_seal
from governance.evidence.controls import control_tests
from governance.evidence.exceptions import period_exceptions
from governance.evidence.reconciliation import reconcile
from governance.models import Approval
from governance.roles import Role
from tests.factories import make_user
from tests.governance.evidence.population_world import EXPECTED, World, build_world


@pytest.fixture
def world(db) -> World:
    return build_world()


def test_the_period_holds_exactly_the_planted_exceptions_of_every_kind(world: World):
    found = period_exceptions(world.period())
    assert {e.key for e in found} == world.expected_keys()
    assert found == sorted(found, key=lambda e: (e.record, e.kind))
    assert all(e.key == f"{e.kind}:{e.record}" and e.reason for e in found)
    assert {kind for kind, _ in EXPECTED} == {
        "no_approved_change", "no_allowing_check", "approval_after_start", "self_approval", "approval_role_not_held",
        "emergency_review_missing", "emergency_review_late", "outside_window", "freeze_override",
        "digest_not_approved", "no_test_evidence", "deployer_not_service_account"}


def test_each_exception_carries_the_evidence_behind_it(world: World):
    found = {e.key: e for e in period_exceptions(world.period())}

    def of(kind, name):
        return found[f"{kind}:{world.record_of(name, kind)}"].evidence

    early = of("approval_after_start", "early")
    assert early["approved_at"] > early["started_at"]
    own = of("self_approval", "own_approval")
    assert own["approvals"] == [{**own["approvals"][0], "approver": "sam", "is": "requester"}]
    assert of("self_approval", "deployer_approved")["approvals"][0]["approver"] == "rob"
    assert [a["approver"] for a in of("approval_role_not_held", "role_not_held")["approvals"]] == ["tess"]
    assert of("freeze_override", "override")["freezes"] == ["Year-end close"]
    other = of("digest_not_approved", "other_build")
    assert other["digest"] not in other["approved_digests"]
    assert of("emergency_review_missing", "emergency_missing")["retrospective_done_at"] is None
    late = of("emergency_review_late", "emergency_late")
    assert late["retrospective_done_at"] > late["retrospective_due"]
    assert of("deployer_not_service_account", "by_a_person")["reported_by"] == "rita"
    assert of("outside_window", "outside")["window_end"] < of("outside_window", "outside")["started_at"]


def test_a_role_is_judged_as_the_ledger_shows_it_held_at_the_approval(world: World):
    """cleo approved as a CAB member and left the CAB since: no exception. Put back now, tess's approval given
    before she held the role still is one."""
    keys = {e.key for e in period_exceptions(world.period())}
    assert not any(world.changes["clean"].number in key for key in keys)
    world.tess.groups.add(Group.objects.get(name=Role.CAB_MEMBER))
    audit_seal()
    assert f"approval_role_not_held:{world.changes['role_not_held'].number}" in {
        e.key for e in period_exceptions(world.period())}


def test_an_approval_after_the_deployment_started_is_found_whoever_gave_it(world: World):
    clean = world.changes["clean_run"]
    Approval.objects.create(change=clean, approver=make_user("cora", Role.CAB_MEMBER), decision="approve",
                            revision=clean.revision, role=Group.objects.get(name=Role.CAB_MEMBER))
    audit_seal()
    found = {e.key for e in period_exceptions(world.period())}
    assert found - world.expected_keys() == {f"approval_after_start:{world.deployments['clean_run'].number}"}


def test_a_check_that_allowed_another_build_allows_nothing_else(world: World):
    allowed_build = world.build()
    deployment = world.reported("other_check", world.changes["clean_run"], check=world.check(allowed_build))
    unpaired = {(u["side"], u["record"]) for u in reconcile(world.period()).unpaired}
    found = {e.key for e in period_exceptions(world.period())}
    assert found - world.expected_keys() == {f"no_allowing_check:{deployment.number}"}
    assert ("deployment", deployment.number) in unpaired


def test_the_controls_fail_on_their_own_exceptions_and_pass_without_them(world: World):
    found = period_exceptions(world.period())
    results = {c.control: c for c in control_tests(world.period(), found)}
    assert set(results) == {"CM-1", "CM-2", "CM-3", "CM-4", "CM-5"}
    kinds = {control: {key.split(":")[0] for key in result.exception_keys} for control, result in results.items()}
    assert kinds == {
        "CM-1": {"no_approved_change", "approval_after_start", "outside_window", "digest_not_approved",
                 "no_allowing_check"},
        "CM-2": {"self_approval", "approval_role_not_held"},
        "CM-3": {"no_test_evidence"},
        "CM-4": {"emergency_review_missing", "emergency_review_late", "freeze_override"},
        "CM-5": {"deployer_not_service_account", "no_allowing_check"},
    }
    assert all(not r.passed and r.criteria for r in results.values())
    assert results["CM-1"].tested == 21 and results["CM-4"].tested == 2
    clean = control_tests(world.period("phi"))
    assert all(r.passed and r.exception_keys == () for r in clean), clean


def test_finding_the_exceptions_costs_a_fixed_number_of_queries(world: World, django_assert_max_num_queries):
    # The ledger's roles (groups, team role permissions, events), then per chunk: deployments, changes, approvals,
    # gate checks, freeze overrides and the teams owning the changes' CIs.
    with django_assert_max_num_queries(3 + 6):
        period_exceptions(world.period())
