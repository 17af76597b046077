"""A double submit, made to happen every time: the first request's row is written and left uncommitted while the
second request runs in another thread, passes the name check (it cannot see that row), and waits on the unique
index; the first then commits."""

import threading
import time
from collections.abc import Callable

from django.db import connection, connections, transaction


def posted_during_a_twin(client, url: str, data: dict, create_twin: Callable[[], object]):
    """The response to posting `data` to `url` while `create_twin()`'s row is being committed."""
    outcome: dict = {}

    def submit() -> None:
        try:
            outcome["response"] = client.post(url, data)
        except Exception as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    with transaction.atomic():
        create_twin()
        second = threading.Thread(target=submit)
        second.start()
        _wait_until_blocked(second)
    second.join(timeout=30)
    assert "error" not in outcome, f"the second submit crashed: {outcome.get('error')!r}"
    return outcome["response"]


def _wait_until_blocked(thread: threading.Thread) -> None:
    deadline = time.monotonic() + 20
    with connection.cursor() as cursor:
        while thread.is_alive():
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, "the second submit never reached the unique index"
            time.sleep(0.05)
