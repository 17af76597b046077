"""The changes' periodic jobs. The approvers' e-mail, which the services queue, is a task of notifications.py, so
that the services need not import the jobs that call them."""

from celery import shared_task

from governance.changes.services import approval_reminders_send
from governance.changes.services import approval_requests_expire as expire

# Task names keep the module they were first queued under, so beat's schedule and queued messages still resolve.


@shared_task(name="governance.tasks.approval_reminders", ignore_result=True)
def approval_reminders() -> int:
    return approval_reminders_send()


@shared_task(name="governance.tasks.approval_requests_expire", ignore_result=True)
def approval_requests_expire() -> int:
    return expire()
