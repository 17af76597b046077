"""Seeding the demo mails nobody about its history: only the changes it leaves awaiting approval are announced to
their approvers, once the seed has committed, as a real submission's would be."""

import functools
import io

import pytest
from django.core import mail
from django.core.management import call_command

from governance.changes import notifications
from governance.management.commands.seed_demo import DEMO_CHANGES, _is_mail
from governance.models import ChangeRequest
from governance.models import ChangeStatus as S

pytestmark = pytest.mark.django_db


def seed(capture) -> list:
    with capture() as callbacks:
        call_command("seed_demo", "--password", "demo-password-for-tests", stdout=io.StringIO())
    return callbacks


def test_seeding_queues_mail_only_about_the_changes_left_awaiting_approval(django_capture_on_commit_callbacks):
    callbacks = seed(django_capture_on_commit_callbacks)
    queued = [(cb.func.__self__.name, cb.args) for cb in callbacks]
    awaiting = set(ChangeRequest.objects.filter(status=S.CAB_REVIEW).values_list("pk", flat=True))
    assert awaiting
    assert sorted(queued) == sorted(("governance.tasks.approvers_notify", (pk, "review")) for pk in awaiting)


def test_the_mail_it_sends_asks_approvers_about_changes_in_review_only(django_capture_on_commit_callbacks):
    callbacks = seed(django_capture_on_commit_callbacks)
    mail.outbox.clear()
    for callback in callbacks:  # as the worker runs them
        callback.func.__self__(*callback.args, **callback.keywords)
    subjects = [message.subject for message in mail.outbox]
    assert subjects and all(s.startswith("Approval needed: ") for s in subjects)
    titles = {s.split(" ", 3)[3] for s in subjects}
    assert titles <= {c.title for c in DEMO_CHANGES if c.status == S.CAB_REVIEW}
    for finished in ("Switch sanctions-screening to the vendor's v5 lists", "Retire the swift-connector test stub"):
        assert not any(finished in message.subject or finished in message.body for message in mail.outbox)


def test_a_second_seed_adds_nothing_and_mails_nobody(django_capture_on_commit_callbacks):
    seed(django_capture_on_commit_callbacks)
    assert seed(django_capture_on_commit_callbacks) == []


def test_the_mail_held_back_is_the_notification_tasks_only():
    assert _is_mail(functools.partial(notifications.approvers_notify_queued.delay, 1, "review")) is True
    assert _is_mail(functools.partial(print, 1)) is False
    assert _is_mail(lambda: None) is False
