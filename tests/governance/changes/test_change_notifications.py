"""E-mail about changes: absolute links a mail client can open, the requester and the implementer told of approval,
rejection and scheduling, and of a change nobody may approve; each queued after the commit like the approvers'."""

import re

import pytest
from django.core import mail

from governance.changes.notifications import (
    approvers_notify_queued,
    change_url,
    requester_notify_queued,
    unapprovable_notify,
)
from governance.changes.services import approval_record, change_request_transition
from governance.models import ChangeRequest
from governance.models import ChangeStatus as S
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db

BASE = "https://changeboard.bank.example"


@pytest.fixture(autouse=True)
def base_url(settings):
    settings.CHANGEBOARD_BASE_URL = BASE


@pytest.fixture
def staging(db):
    return make_environment("staging", 2)


@pytest.fixture
def api(db):
    return make_ci("statements-api", team=make_team("payments"), criticality=3)


@pytest.fixture
def rita(db):
    return make_user("rita", Role.REQUESTER, email="rita@bank.example")


@pytest.fixture
def carla(db):
    return make_user("carla", Role.CAB_MEMBER, email="carla@bank.example", first_name="Carla", last_name="Cab")


@pytest.fixture
def ian(db):
    return make_user("ian", Role.REQUESTER, email="ian@bank.example")


def queued(callbacks, task: str) -> list[tuple]:
    return [tuple(cb.args) for cb in callbacks
            if getattr(getattr(cb, "func", None), "__self__", None) is not None and cb.func.__self__.name == task]


def run(callbacks) -> None:
    """The mail tasks queued for after the commit, run here as a worker would."""
    for args in queued(callbacks, "governance.tasks.approvers_notify"):
        approvers_notify_queued(*args)
    for args in queued(callbacks, "governance.tasks.requester_notify"):
        requester_notify_queued(*args)


def submitted(change: ChangeRequest) -> ChangeRequest:
    return change_request_transition(actor=change.requester, change=change, target=S.SUBMITTED)


def links(message) -> list[str]:
    return re.findall(r"\S+://\S+|(?<!\S)/changes/\S+", message.body)


def test_the_approvers_mail_links_to_the_change_by_its_absolute_address(rita, carla, api, staging,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        change = submitted(make_change(rita, cis=[api], environment=staging))
    run(callbacks)
    [message] = mail.outbox
    assert message.to == ["carla@bank.example"]
    assert links(message) == [f"{BASE}/changes/{change.number}/"] == [change_url(change)]


def test_the_requester_and_the_implementer_are_told_of_the_approval(rita, carla, ian, api, staging,
                                                                    django_capture_on_commit_callbacks):
    change = submitted(make_change(rita, cis=[api], environment=staging, implementer=ian, title="Rotate keys"))
    with django_capture_on_commit_callbacks() as callbacks:
        approval_record(actor=carla, change=change, decision="approve", comment="fine")
    assert queued(callbacks, "governance.tasks.requester_notify") == [(change.pk, S.APPROVED, None)]
    run(callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["ian@bank.example", "rita@bank.example"]
    message = mail.outbox[0]
    assert message.subject == f"Approved: {change.number} Rotate keys"
    assert "Approved: every required approval given" in message.body
    assert links(message) == [f"{BASE}/changes/{change.number}/"]


def test_a_rejection_tells_the_requester_who_rejected_it_and_why(rita, carla, api, staging,
                                                                 django_capture_on_commit_callbacks):
    change = submitted(make_change(rita, cis=[api], environment=staging, title="Rotate keys"))
    with django_capture_on_commit_callbacks() as callbacks:
        approval_record(actor=carla, change=change, decision="reject", comment="No backout tested")
    run(callbacks)
    [message] = mail.outbox
    assert message.to == ["rita@bank.example"] and message.subject == f"Rejected: {change.number} Rotate keys"
    assert "Rejected: rejected by carla: No backout tested" in message.body
    assert f"{BASE}/changes/{change.number}/" in message.body


def test_scheduling_tells_the_requester_but_not_the_release_manager_who_scheduled_it(
        rita, carla, api, staging, django_capture_on_commit_callbacks):
    rachel = make_user("rachel", Role.RELEASE_MANAGER, email="rachel@bank.example")
    change = submitted(make_change(rita, cis=[api], environment=staging, implementer=rachel))
    approval_record(actor=carla, change=change, decision="approve")
    with django_capture_on_commit_callbacks() as callbacks:
        change_request_transition(actor=rachel, change=change, target=S.SCHEDULED, reason="Tuesday slot")
    assert queued(callbacks, "governance.tasks.requester_notify") == [(change.pk, S.SCHEDULED, rachel.pk)]
    run(callbacks)
    [message] = mail.outbox
    assert message.to == ["rita@bank.example"] and message.subject.startswith("Scheduled: ")
    assert "Scheduled by rachel: Tuesday slot" in message.body


def test_nobody_is_told_of_a_move_twice_nor_without_an_address(carla, api, staging,
                                                               django_capture_on_commit_callbacks):
    silent = make_user("sid", Role.REQUESTER)  # no e-mail address
    change = submitted(make_change(silent, cis=[api], environment=staging, implementer=silent))
    with django_capture_on_commit_callbacks() as callbacks:
        approval_record(actor=carla, change=change, decision="approve")
    run(callbacks)
    assert mail.outbox == []


def test_a_change_sent_for_review_that_nobody_may_approve_is_told_to_its_requester(
        rita, api, staging, django_capture_on_commit_callbacks):
    ivan = make_user("ivan", Role.CAB_MEMBER, email="ivan@bank.example", first_name="Ivan", last_name="Implementer")
    with django_capture_on_commit_callbacks() as callbacks:
        change = submitted(make_change(rita, cis=[api], environment=staging, implementer=ivan, title="Rotate keys"))
    run(callbacks)
    # No approver to ask; the requester and the implementer are told, each in a mail of their own.
    assert sorted(address for m in mail.outbox for address in m.to) == ["ivan@bank.example", "rita@bank.example"]
    message = mail.outbox[0]
    assert message.subject == f"Nobody can approve {change.number} Rotate keys"
    assert ("- Nobody but the implementer (Ivan Implementer) holds CAB member: nobody can approve this change; "
            "choose another implementer.") in message.body
    assert f"{BASE}/changes/{change.number}/" in message.body


def test_a_change_someone_may_approve_sends_no_such_notice(rita, carla, api, staging):
    change = submitted(make_change(rita, cis=[api], environment=staging))
    assert unapprovable_notify(change) == 0
    assert mail.outbox == []
