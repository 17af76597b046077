from celery import shared_task
from django.core.management import call_command

# Task names keep the module they were first queued under, so beat's schedule and queued messages still resolve.


@shared_task(name="governance.tasks.sessions_clear_expired", ignore_result=True)
def sessions_clear_expired() -> None:
    call_command("clearsessions")
