from celery import shared_task

from governance.evidence.bundle import BUILD_TASK, bundle_build


@shared_task(name=BUILD_TASK, ignore_result=True, bind=True)
def evidence_bundle_build(self, bundle_id: int) -> None:
    """Build a queued evidence bundle's zip. Acknowledged late (the settings' default): when the worker dies while
    building, the broker delivers the message again, marked redelivered, and the bundle is built anew; any other
    second delivery finds it no longer queued and does nothing."""
    bundle_build(bundle_id, again=bool((self.request.delivery_info or {}).get("redelivered")))
