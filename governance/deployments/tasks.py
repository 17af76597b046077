from celery import shared_task

from governance.deployments.orchestration import deployments_resume_stalled


@shared_task(name="governance.tasks.deployments_resume_stalled", ignore_result=True)
def deployments_resume_stalled_task() -> int:
    """Send again the steps nothing advances and start the queued deployments whose environment came free."""
    return deployments_resume_stalled()
