"""The lifecycle table and `transition_refusal`, exhaustively, as plain data: no database."""

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from governance.changes.workflow import (
    SYSTEM,
    TRANSITIONS,
    ChangeFacts,
    Mover,
    MoverFacts,
    transition_refusal,
    user_moves,
)
from governance.models.changes import ChangeStatus as S
from governance.models.changes import ChangeType

NOW = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)
ALL_PAIRS = list(itertools.product(S.values, S.values))
PERSONS = {
    Mover.REQUESTER: MoverFacts(is_requester=True),
    Mover.IMPLEMENTER: MoverFacts(is_implementer=True),
    Mover.RELEASE_MANAGER: MoverFacts(is_release_manager=True),
    Mover.SYSTEM: SYSTEM,
}
NOBODY = MoverFacts()  # authenticated, but plays no part in the change


def ready(status: str = S.DRAFT, **overrides) -> ChangeFacts:
    """A change that meets every precondition at NOW: its window opened 5 minutes ago and lasts an hour."""
    facts = ChangeFacts(
        status=status, change_type=ChangeType.NORMAL, has_cis=True, has_environment=True,
        planned_start=NOW - timedelta(minutes=5), planned_end=NOW + timedelta(hours=1),
        has_implementation_plan=True, has_backout_plan=True, has_template=False, retrospective_done=True,
    )
    return replace(facts, **overrides)


def label(status: str) -> str:
    return S(status).label


def pair_id(pair) -> str:
    return f"{pair[0]}->{pair[1]}"


# --- the table: every (from, to) pair, every mover -------------------------------------------------------

@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if p not in TRANSITIONS], ids=pair_id)
def test_a_move_missing_from_the_table_is_refused_for_everyone(pair):
    frm, to = pair
    for mover in [*PERSONS.values(), NOBODY, MoverFacts(is_requester=True, is_release_manager=True)]:
        assert transition_refusal(ready(frm), to, mover, NOW) == (
            f"A change cannot go from {label(frm)} to {label(to)}.")


@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=pair_id)
def test_a_listed_move_is_allowed_for_each_of_its_movers(pair):
    frm, to = pair
    for mover in TRANSITIONS[pair]:
        assert transition_refusal(ready(frm), to, PERSONS[mover], NOW) is None, mover


@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=pair_id)
def test_a_listed_move_is_refused_for_everyone_else_with_a_reason_naming_who_may(pair):
    frm, to = pair
    movers = TRANSITIONS[pair]
    others = [PERSONS[m] for m in Mover if m not in movers] + [NOBODY]
    people = movers - {Mover.SYSTEM}
    for mover in others:
        reason = transition_refusal(ready(frm), to, mover, NOW)
        assert reason is not None, mover
        assert label(to) in reason
        if not people:
            assert reason == f"Changeboard moves a change to {label(to)} by itself; nobody does it by hand."
        else:
            assert reason.startswith("Only ") and reason.endswith(f"may move this change to {label(to)}.")
            for allowed in people:
                assert allowed.value in reason
            for refused in set(Mover) - movers:
                assert refused.value not in reason


@pytest.mark.parametrize("pair", [p for p, movers in TRANSITIONS.items() if movers - {Mover.SYSTEM}], ids=pair_id)
def test_playing_one_allowed_part_among_several_is_enough(pair):
    frm, to = pair
    everything_but_system = MoverFacts(is_requester=True, is_implementer=True, is_release_manager=True)
    assert transition_refusal(ready(frm), to, everything_but_system, NOW) is None


def test_only_changeboard_moves_a_change_through_assessment_review_and_expiry():
    system_only = {pair for pair, movers in TRANSITIONS.items() if movers == {Mover.SYSTEM}}
    assert system_only == {
        (S.SUBMITTED, S.ASSESSED), (S.ASSESSED, S.CAB_REVIEW), (S.ASSESSED, S.APPROVED),
        (S.CAB_REVIEW, S.APPROVED), (S.CAB_REVIEW, S.REJECTED), (S.CAB_REVIEW, S.DRAFT),
        (S.APPROVED, S.CAB_REVIEW), (S.SCHEDULED, S.CAB_REVIEW), (S.APPROVED, S.IMPLEMENTING),
    }


def test_changeboard_moves_a_change_as_the_deployment_it_runs_goes():
    followed = {pair for pair, movers in TRANSITIONS.items() if Mover.SYSTEM in movers and pair[0] in (
        S.APPROVED, S.SCHEDULED, S.IMPLEMENTING) and pair[1] in (S.IMPLEMENTING, S.COMPLETED, S.FAILED, S.ROLLED_BACK)}
    assert followed == {(S.APPROVED, S.IMPLEMENTING), (S.SCHEDULED, S.IMPLEMENTING), (S.IMPLEMENTING, S.COMPLETED),
                        (S.IMPLEMENTING, S.FAILED), (S.IMPLEMENTING, S.ROLLED_BACK)}
    for frm, to in followed:
        assert transition_refusal(ready(frm), to, SYSTEM, NOW) is None
    assert transition_refusal(ready(S.APPROVED, planned_start=NOW + timedelta(hours=2)), S.IMPLEMENTING, SYSTEM,
                              NOW).startswith("The window has not opened yet")


def test_nobody_approves_or_rejects_by_a_transition():
    for frm in S.values:
        for mover in PERSONS.values():
            if mover is SYSTEM:
                continue
            assert transition_refusal(ready(frm), S.APPROVED, mover, NOW) is not None
            assert transition_refusal(ready(frm), S.REJECTED, mover, NOW) is not None


@pytest.mark.parametrize("status", S.values)
def test_terminal_states_lead_nowhere_and_open_states_can_be_cancelled(status):
    targets = {to for (frm, to) in TRANSITIONS if frm == status}
    if status in (S.CLOSED, S.REJECTED, S.CANCELLED):
        assert targets == set()
    cancellable = status in (S.DRAFT, S.SUBMITTED, S.ASSESSED, S.CAB_REVIEW, S.APPROVED, S.SCHEDULED)
    assert (S.CANCELLED in targets) is cancellable
    if cancellable:
        assert transition_refusal(ready(status), S.CANCELLED, PERSONS[Mover.REQUESTER], NOW) is None
        assert transition_refusal(ready(status), S.CANCELLED, PERSONS[Mover.IMPLEMENTER], NOW) is not None


@pytest.mark.parametrize("status", S.values)
def test_user_moves_lists_the_moves_a_person_can_make_and_none_of_changeboards(status):
    expected = [to for (frm, to), movers in TRANSITIONS.items() if frm == status and movers - {Mover.SYSTEM}]
    assert user_moves(status) == expected
    for target in user_moves(status):
        assert any(transition_refusal(ready(status), target, PERSONS[m], NOW) is None
                   for m in TRANSITIONS[(status, target)] - {Mover.SYSTEM})


def test_user_moves_from_review_is_only_cancel():
    assert user_moves(S.CAB_REVIEW) == [S.CANCELLED]
    assert user_moves(S.IMPLEMENTING) == [S.COMPLETED, S.FAILED, S.ROLLED_BACK]


# --- submit: what is missing, exactly --------------------------------------------------------------------

REQUESTER = PERSONS[Mover.REQUESTER]
RELEASE_MANAGER = PERSONS[Mover.RELEASE_MANAGER]
IMPLEMENTER = PERSONS[Mover.IMPLEMENTER]


def submit(**overrides) -> str | None:
    return transition_refusal(ready(S.DRAFT, **overrides), S.SUBMITTED, REQUESTER, NOW)


@pytest.mark.parametrize(("overrides", "missing"), [
    ({"has_cis": False}, "affected CIs"),
    ({"has_environment": False}, "a target environment"),
    ({"planned_start": None}, "a planned window"),
    ({"planned_end": None}, "a planned window"),
    ({"has_implementation_plan": False}, "an implementation plan"),
    ({"has_backout_plan": False}, "a backout plan"),
], ids=["cis", "environment", "start", "end", "implementation", "backout"])
def test_submit_names_the_one_thing_missing(overrides, missing):
    assert submit(**overrides) == f"Before submitting, add {missing}."


def test_submit_lists_everything_missing_in_order():
    assert submit(has_cis=False, has_environment=False, planned_start=None, planned_end=None,
                  has_implementation_plan=False, has_backout_plan=False) == (
        "Before submitting, add affected CIs, a target environment, a planned window, an implementation plan, "
        "a backout plan.")
    assert submit(has_cis=False, has_backout_plan=False) == "Before submitting, add affected CIs, a backout plan."


def test_a_complete_normal_or_emergency_change_may_be_submitted_by_its_requester_only():
    assert submit() is None
    assert submit(change_type=ChangeType.EMERGENCY) is None
    assert transition_refusal(ready(S.DRAFT), S.SUBMITTED, RELEASE_MANAGER, NOW) == (
        "Only the requester may move this change to Submitted.")


def test_an_emergency_change_needs_a_backout_plan_too():
    assert submit(change_type=ChangeType.EMERGENCY, has_backout_plan=False) == "Before submitting, add a backout plan."


def test_a_standard_change_needs_its_template_but_no_backout_plan():
    assert submit(change_type=ChangeType.STANDARD, has_template=True, has_backout_plan=False) is None
    assert submit(change_type=ChangeType.STANDARD, has_template=False) == (
        "Before submitting, add a standard change template.")
    assert submit(change_type=ChangeType.STANDARD, has_template=False, has_backout_plan=False, has_cis=False) == (
        "Before submitting, add affected CIs, a standard change template.")


def test_a_template_is_not_asked_of_a_normal_change():
    assert submit(has_template=False) is None


# --- schedule: not after the window ----------------------------------------------------------------------

def schedule(**overrides) -> str | None:
    return transition_refusal(ready(S.APPROVED, **overrides), S.SCHEDULED, RELEASE_MANAGER, NOW)


def test_scheduling_is_refused_once_the_window_is_over():
    over = "The planned window is over: move it before scheduling."
    assert schedule(planned_start=NOW - timedelta(hours=3), planned_end=NOW - timedelta(hours=1)) == over
    assert schedule(planned_start=NOW - timedelta(hours=1), planned_end=NOW) == over  # ends this very moment
    assert schedule(planned_end=None) == over


def test_scheduling_is_allowed_for_a_window_still_to_come_or_under_way():
    assert schedule(planned_start=NOW + timedelta(days=2), planned_end=NOW + timedelta(days=2, hours=1)) is None
    assert schedule(planned_start=NOW - timedelta(hours=1), planned_end=NOW + timedelta(seconds=1)) is None


# --- implementing: inside the window, from 15 minutes early ----------------------------------------------

def implement(mover=IMPLEMENTER, **overrides) -> str | None:
    return transition_refusal(ready(S.SCHEDULED, **overrides), S.IMPLEMENTING, mover, NOW)


def test_implementing_is_refused_before_the_window_opens_and_says_when_it_opens():
    start = NOW + timedelta(minutes=15, seconds=1)
    assert implement(planned_start=start, planned_end=start + timedelta(hours=1)) == (
        f"The window has not opened yet: it opens at {start:%Y-%m-%d %H:%M} UTC.")
    assert implement(planned_start=NOW + timedelta(days=1), planned_end=NOW + timedelta(days=1, hours=1)) == (
        "The window has not opened yet: it opens at 2024-06-13 10:00 UTC.")


def test_implementing_may_start_fifteen_minutes_early():
    start = NOW + timedelta(minutes=15)
    assert implement(planned_start=start, planned_end=start + timedelta(hours=1)) is None
    assert implement(RELEASE_MANAGER, planned_start=start, planned_end=start + timedelta(hours=1)) is None


def test_implementing_is_refused_after_the_window_closes():
    closed = "The window has closed: reschedule the change."
    assert implement(planned_start=NOW - timedelta(hours=2), planned_end=NOW - timedelta(seconds=1)) == closed
    assert implement(planned_start=NOW - timedelta(hours=2), planned_end=NOW) is None  # the last moment


def test_implementing_without_a_window_is_refused_with_a_reason():
    assert implement(planned_start=None, planned_end=None) == (
        "The change has no planned window: plan one before implementing.")


def test_the_requester_cannot_start_implementing():
    assert implement(REQUESTER) == "Only a release manager or the implementer may move this change to Implementing."


# --- closing an emergency change waits for its retrospective ---------------------------------------------

@pytest.mark.parametrize("finished", [S.COMPLETED, S.FAILED, S.ROLLED_BACK])
def test_an_emergency_change_cannot_close_before_its_retrospective(finished):
    facts = ready(finished, change_type=ChangeType.EMERGENCY, retrospective_done=False)
    assert transition_refusal(facts, S.CLOSED, RELEASE_MANAGER, NOW) == (
        "An emergency change is closed only after its retrospective review.")
    assert transition_refusal(replace(facts, retrospective_done=True), S.CLOSED, RELEASE_MANAGER, NOW) is None


@pytest.mark.parametrize("change_type", [ChangeType.NORMAL, ChangeType.STANDARD])
def test_other_changes_close_without_a_retrospective(change_type):
    facts = ready(S.COMPLETED, change_type=change_type, retrospective_done=False, has_template=True)
    assert transition_refusal(facts, S.CLOSED, RELEASE_MANAGER, NOW) is None


def test_preconditions_are_checked_only_after_the_mover():
    """Someone who may not make the move learns that, not what the change lacks."""
    facts = ready(S.DRAFT, has_cis=False)
    assert transition_refusal(facts, S.SUBMITTED, IMPLEMENTER, NOW) == (
        "Only the requester may move this change to Submitted.")
