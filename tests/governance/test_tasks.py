import time
from datetime import timedelta

from django.contrib.sessions.models import Session
from django.utils import timezone

from governance.access.tasks import sessions_clear_expired


def test_a_real_worker_purges_expired_sessions_and_keeps_live_ones(celery_worker_process):
    now = timezone.now()
    Session.objects.create(session_key="expired" * 4, session_data="x", expire_date=now - timedelta(hours=1))
    Session.objects.create(session_key="current" * 4, session_data="x", expire_date=now + timedelta(hours=1))

    sessions_clear_expired.delay()

    deadline = time.monotonic() + 20
    while Session.objects.filter(session_key="expired" * 4).exists():
        assert time.monotonic() < deadline, "the worker did not purge the expired session"
        time.sleep(0.2)
    assert Session.objects.filter(session_key="current" * 4).exists()


def test_every_periodic_job_names_a_task_the_workers_find():
    """Beat queues jobs by name: a task moved to another module must keep the name the schedule (and any message
    already queued) gives."""
    from django.conf import settings

    from governance.celery import app

    app.loader.import_default_modules()
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert names <= set(app.tasks), names - set(app.tasks)
    assert {"governance.tasks.approvers_notify", "governance.tasks.requester_notify",
            "governance.tasks.github_review_send"} <= set(app.tasks)
