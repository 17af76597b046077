import pytest

from governance.changes.services import approval_record, change_request_transition
from governance.models import ChangeStatus
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db


def test_a_normal_change_goes_through_cab_to_approved():
    team = make_team()
    prod = make_environment("prod", 3, is_production=True)
    ci = make_ci("payments-api", team=team, criticality=2)
    alice = make_user("alice", "requester")
    carol = make_user("carol", "cab_member")
    change = make_change(alice, cis=[ci], environment=prod)
    assert change.number.startswith("CHG")
    change = change_request_transition(actor=alice, change=change, target=ChangeStatus.SUBMITTED)
    assert change.status == ChangeStatus.CAB_REVIEW, change.risk_factors
    approval_record(actor=carol, change=change, decision="approve", comment="fine")
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED
