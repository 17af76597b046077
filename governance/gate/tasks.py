from celery import shared_task
from django.utils import timezone

from governance.gate.github import github_review_send, reviews_unanswered

# Task names keep the module they were first queued under, so beat's schedule and queued messages still resolve.


@shared_task(name="governance.tasks.github_reviews_resend", ignore_result=True)
def github_reviews_resend() -> int:
    """Queue again every review still owed to GitHub (a broker down at the webhook, retries used up)."""
    owed = list(reviews_unanswered(timezone.now()).values_list("pk", flat=True))
    for review_id in owed:
        github_review_send.delay(review_id)
    return len(owed)
