from celery import shared_task

from governance.evidence.bundle import BUILD_TASK, bundle_build


@shared_task(name=BUILD_TASK, ignore_result=True)
def evidence_bundle_build(bundle_id: int) -> None:
    """Build a queued evidence bundle's zip; a second delivery finds it no longer queued and does nothing."""
    bundle_build(bundle_id)
