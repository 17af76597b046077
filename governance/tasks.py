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


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def approvers_notify(change_id: int, kind: str, user_ids: list[int] | None = None) -> None:
    from governance.changes.notifications import approvers_notify as notify
    from governance.models import ChangeRequest

    change = ChangeRequest.objects.filter(pk=change_id).first()
    if change is not None:
        notify(change, kind, user_ids)


@shared_task(ignore_result=True)
def approval_reminders() -> int:
    from governance.changes.services import approval_reminders_send

    return approval_reminders_send()


@shared_task(ignore_result=True)
def approval_requests_expire() -> int:
    from governance.changes.services import approval_requests_expire as expire

    return expire()


@shared_task(ignore_result=True)
def calendar_occurrences_refresh() -> int:
    """Move every window's computed occurrences on to today's horizon."""
    from governance.calendar.services import calendar_occurrences_refresh as refresh

    return refresh()


@shared_task(ignore_result=True, bind=True, max_retries=5)
def github_review_send(self, review_id: int) -> None:
    """Answer a GitHub deployment protection rule; GitHub unreachable or not ready (422) is tried again."""
    from django.conf import settings

    from governance.gate.github import GitHubUnavailable, review_send

    try:
        review_send(review_id)
    except GitHubUnavailable as error:
        countdown = settings.GITHUB_REVIEW_RETRY_SECONDS * 2 ** self.request.retries
        raise self.retry(exc=error, countdown=countdown) from error


@shared_task(ignore_result=True)
def github_reviews_resend() -> int:
    """Queue again every review still owed to GitHub (a broker down at the webhook, retries used up)."""
    from django.utils import timezone

    from governance.gate.github import reviews_unanswered

    owed = list(reviews_unanswered(timezone.now()).values_list("pk", flat=True))
    for review_id in owed:
        github_review_send.delay(review_id)
    return len(owed)
