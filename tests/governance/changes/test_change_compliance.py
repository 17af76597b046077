"""An open change keeps the approvals its CIs' flags and tiers asked for at submission: lowering them later,
even through the proper door, does not thin what the change still needs."""

from datetime import timedelta

import pytest

from governance.changes.services import change_request_transition, change_request_update
from governance.models import ApprovalRequirement, ChangeRequest
from governance.models import ChangeStatus as S
from tests.factories import make_change, make_ci, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def requester(db):
    return make_user("riya", "requester")


def needs(change: ChangeRequest) -> dict[str, int]:
    change.refresh_from_db()
    return {r.role.name: r.count
            for r in ApprovalRequirement.objects.filter(change=change, revision=change.revision)}


def lower(ci) -> None:
    """What a compliance officer may do: lower the flags and tier of a CI (written here as the row update)."""
    ci.sox_scoped, ci.pci, ci.criticality, ci.compliance_reason = False, False, 4, "scope review"
    ci.save()


def test_a_change_in_review_keeps_its_requirements_after_its_ci_flags_drop(requester, prod, team):
    ledger = make_ci("ledger-db", team=team, ci_type="database", criticality=1, sox_scoped=True, pci=True)
    change = change_request_transition(actor=requester, change=make_change(requester, cis=[ledger],
                                                                           environment=prod), target=S.SUBMITTED)
    before = needs(change)
    assert {"cab_member", "compliance_officer", "sre", "business_owner"} <= set(before)
    lower(ledger)
    # Moving the window makes a new revision, assessed and routed again: still from the flags it was submitted with.
    change_request_update(actor=requester, change=change, planned_start=change.planned_start + timedelta(hours=1),
                          planned_end=change.planned_end + timedelta(hours=1))
    change.refresh_from_db()
    assert change.revision == 2
    assert change.status == S.CAB_REVIEW
    assert needs(change) == before
    assert change.risk_level == "high"
    assert change.compliance_at_submission == {
        str(ledger.pk): {"sox_scoped": True, "pci": True, "phi": False, "criticality": 1, "tags": []}}


def test_a_flag_raised_while_the_change_is_open_counts_at_the_next_revision(requester, prod, team):
    ci = make_ci("statements", team=team, criticality=3)
    change = change_request_transition(actor=requester, change=make_change(requester, cis=[ci], environment=prod),
                                       target=S.SUBMITTED)
    assert "compliance_officer" not in needs(change)
    ci.sox_scoped, ci.compliance_reason = True, "now in SOX scope"
    ci.save()
    change_request_update(actor=requester, change=change, planned_start=change.planned_start + timedelta(hours=1),
                          planned_end=change.planned_end + timedelta(hours=1))
    assert "compliance_officer" in needs(change)


def test_a_new_submission_reads_the_flags_as_they_are_then(requester, prod, team):
    ledger = make_ci("ledger-db", team=team, ci_type="database", criticality=1, sox_scoped=True)
    change = change_request_transition(actor=requester, change=make_change(requester, cis=[ledger],
                                                                           environment=prod), target=S.SUBMITTED)
    change_request_transition(actor=requester, change=change, target=S.CANCELLED)
    lower(ledger)
    again = change_request_transition(actor=requester, change=make_change(requester, cis=[ledger],
                                                                          environment=prod), target=S.SUBMITTED)
    assert "compliance_officer" not in needs(again)
    assert again.compliance_at_submission[str(ledger.pk)]["sox_scoped"] is False


def test_taking_a_ci_off_an_open_change_and_putting_it_back_keeps_its_flags(requester, prod, team):
    ledger = make_ci("ledger-db", team=team, ci_type="database", criticality=1, sox_scoped=True, pci=True,
                     tags=["card-data"])
    other = make_ci("statements", team=team, criticality=3)
    change = change_request_transition(actor=requester, change=make_change(requester, cis=[ledger, other],
                                                                           environment=prod), target=S.SUBMITTED)
    before = needs(change)
    lower(ledger)
    ledger.tags = []
    ledger.save()
    change_request_update(actor=requester, change=change, cis=[other])
    change_request_update(actor=requester, change=change, cis=[ledger, other])
    change.refresh_from_db()
    assert change.revision == 3
    assert needs(change) == before
    assert change.compliance_at_submission[str(ledger.pk)]["tags"] == ["card-data"]


def test_standard_changes_approved_before_templates_had_a_scope_go_back_to_draft(requester, prod, team):
    from importlib import import_module

    from django.apps import apps

    from governance.models import ChangeStatusChange, StandardChangeTemplate

    migration = import_module("governance.migrations.0022_standard_changes_outside_templates")
    unscoped = StandardChangeTemplate.objects.create(name="Rotate TLS certificates")
    ci = make_ci("payments-db", team=team, ci_type="database", criticality=1, sox_scoped=True)
    waiting = make_change(requester, cis=[ci], environment=prod, change_type="standard", template=unscoped,
                          status=S.APPROVED, template_version=1)
    running = make_change(requester, cis=[ci], environment=prod, change_type="standard", template=unscoped,
                          status=S.IMPLEMENTING, template_version=1)
    migration.unapprove(apps, None)
    waiting.refresh_from_db()
    running.refresh_from_db()
    assert (waiting.status, waiting.revision, waiting.template_version) == (S.DRAFT, 2, None)
    assert ChangeStatusChange.objects.get(change=waiting).reason.startswith("its standard change template")
    assert running.status == S.IMPLEMENTING
