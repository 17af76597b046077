from celery import shared_task

from governance.itsm.incidents import incidents_pull
from governance.itsm.relay import deliver_change, outbox_sweep, owner_name


@shared_task(name="governance.tasks.itsm_deliver", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def itsm_deliver(connector: str, change_id: int) -> int:
    """Deliver a change's due updates to one connector, in order. Acknowledged late and given back if the worker
    dies; the updates' leases (not the message) decide who delivers them, so a second delivery of it is harmless."""
    return deliver_change(connector, change_id, owner=owner_name())


@shared_task(name="governance.tasks.itsm_sweep", ignore_result=True)
def itsm_sweep() -> int:
    """Send the task again for each change whose next update is due and stalled: nothing is lost to a broker or a
    worker that went down."""
    return outbox_sweep()


@shared_task(name="governance.tasks.itsm_incidents_pull", ignore_result=True)
def itsm_incidents_pull() -> dict:
    """Bring in the incidents the ServiceNow connectors updated since the last pull (the webhook's other road)."""
    return incidents_pull()
