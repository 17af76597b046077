import time
from datetime import timedelta

from django.contrib.sessions.models import Session
from django.utils import timezone

from governance.tasks import sessions_clear_expired


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
