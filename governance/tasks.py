from celery import shared_task
from django.core.management import call_command


@shared_task(ignore_result=True)
def sessions_clear_expired() -> None:
    call_command("clearsessions")


@shared_task(ignore_result=True)
def audit_seal_pending() -> int:
    """Seal what has been captured; a sealer already at work makes this a no-op."""
    from governance.audit.ledger import audit_seal

    return audit_seal(wait=False)


@shared_task(ignore_result=True)
def audit_checkpoint() -> None:
    from governance.audit.ledger import audit_checkpoint_create

    audit_checkpoint_create()
