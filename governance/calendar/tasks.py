from celery import shared_task

from governance.calendar.services import calendar_occurrences_refresh as refresh

# Task names keep the module they were first queued under, so beat's schedule and queued messages still resolve.


@shared_task(name="governance.tasks.calendar_occurrences_refresh", ignore_result=True)
def calendar_occurrences_refresh() -> int:
    """Move every window's computed occurrences on to today's horizon."""
    return refresh()
