"""Rules the changes area writes once in Python with a query twin beside it: who may approve a change
(`decision_refusal` and `awaiting_approval_by`) and whether a change's window is open (`window_at` and
`window_open_q`). Each pair is held to the same answers over a table of cases."""

from datetime import timedelta

import pytest
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.changes.selectors import ApprovalState, awaiting_approval_by, decision_refusal
from governance.changes.services import approval_record, change_request_transition
from governance.changes.workflow import EARLY_START, Window, window_at, window_open_q
from governance.models import ChangeRequest, ChangeStatus, PolicyRequirement
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db


def _submitted(change: ChangeRequest) -> ChangeRequest:
    change_request_transition(actor=change.requester, change=change, target=ChangeStatus.SUBMITTED)
    change.refresh_from_db()
    return change


def test_who_may_approve_is_the_same_answer_for_one_change_and_for_the_queue():
    payments, cards = make_team("payments"), make_team("cards")
    staging = make_environment("staging", 2)
    requester = make_user("riya", "requester", "cab_member")  # holds the role, but raised the change
    implementer = make_user("ivan", "cab_member")
    cab, cab_decided = make_user("carlos", "cab_member"), make_user("chen", "cab_member")
    inactive = make_user("ines", "cab_member", is_active=False)
    team_cab, other_team_cab = make_user("tara"), make_user("theo")
    assign_perm("cmdb.approve_as_cab_member", team_cab, payments)
    assign_perm("cmdb.approve_as_cab_member", other_team_cab, cards)
    sre, outsider, release_manager = make_user("sam", "sre"), make_user("olga"), make_user("rachel", "release_manager")
    people = [requester, implementer, cab, cab_decided, inactive, team_cab, other_team_cab, sre, outsider,
              release_manager]

    def change(**fields):
        return make_change(requester, cis=[make_ci(team=payments)], environment=staging, implementer=implementer,
                           **fields)

    in_review = _submitted(change(title="one CAB approval needed"))
    assert [(o.role, o.needed) for o in ApprovalState.of(in_review).outstanding()] == [("cab_member", 1)]
    rejected = _submitted(change(title="rejected by chen"))
    approval_record(actor=cab_decided, change=rejected, decision="reject", comment="no backout plan")
    draft = change(title="still a draft")
    approved = _submitted(change(title="approved already"))
    approval_record(actor=cab, change=approved, decision="approve")
    PolicyRequirement.objects.filter(role__name="cab_member").update(count=2)
    half_approved = _submitted(change(title="chen approved; one more CAB approval needed"))
    approval_record(actor=cab_decided, change=half_approved, decision="approve")
    changes = [in_review, rejected, draft, approved, half_approved]
    for each in changes:
        each.refresh_from_db()

    answers = {}
    for person in people:
        queue = set(ChangeRequest.objects.filter(awaiting_approval_by(person)).values_list("pk", flat=True))
        for each in changes:
            one = decision_refusal(person, each, ApprovalState.of(each)) is None
            assert one == (each.pk in queue), (person.username, each.title)
            answers[person.username, each.title] = one
    # The table is not trivially all-no: those who may approve do, and only they.
    assert {who for (who, title), yes in answers.items() if yes and title == in_review.title} == {
        "carlos", "chen", "tara"}
    assert {who for (who, title), yes in answers.items() if yes and title == half_approved.title} == {
        "carlos", "tara"}
    assert not any(yes for (who, title), yes in answers.items() if title not in (in_review.title, half_approved.title))


@pytest.mark.parametrize("start_offset, end_offset, expected", [
    (None, None, Window.UNPLANNED),
    (timedelta(hours=1), timedelta(hours=3), Window.NOT_OPEN),
    (EARLY_START + timedelta(seconds=1), timedelta(hours=3), Window.NOT_OPEN),
    (EARLY_START, timedelta(hours=3), Window.OPEN),  # the early start is inclusive
    (EARLY_START - timedelta(seconds=1), timedelta(hours=3), Window.OPEN),
    (timedelta(0), timedelta(hours=1), Window.OPEN),
    (-timedelta(hours=2), timedelta(0), Window.OPEN),  # its last instant is inside
    (-timedelta(hours=2), -timedelta(seconds=1), Window.CLOSED),
    (-timedelta(days=3), -timedelta(days=2), Window.CLOSED),
])
def test_whether_a_window_is_open_is_the_same_answer_in_python_and_in_a_query(start_offset, end_offset, expected):
    now = timezone.now().replace(microsecond=0)
    requester = make_user("riya", "requester")
    start = now + start_offset if start_offset is not None else None
    end = now + end_offset if end_offset is not None else None
    change = ChangeRequest.objects.create(requester=requester, title="window", planned_start=start,
                                          planned_end=end)
    assert window_at(start, end, now) == expected
    in_query = ChangeRequest.objects.filter(window_open_q(now), pk=change.pk).exists()
    assert in_query == (expected == Window.OPEN)
