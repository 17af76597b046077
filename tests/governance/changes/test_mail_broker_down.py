"""With the broker down, a change still moves: its notification cannot be queued, which is logged, and the request
that moved it does not fail after the change committed."""

import pytest

from governance.celery import app
from governance.changes.services import change_request_transition
from governance.models import ChangeStatus
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    """Nothing listens where the tasks are sent (port 1 on loopback refuses at once)."""
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    app._pool, app.amqp._producer_pool = None, None
    yield
    app._pool, app.amqp._producer_pool = None, None


def test_a_change_submitted_while_the_broker_is_down_is_submitted(broker_down, django_capture_on_commit_callbacks,
                                                                  caplog):
    requester = make_user("rita", "requester")
    change = make_change(requester, cis=[make_ci("payments-api", team=make_team("payments"))],
                         environment=make_environment("prod", 3, is_production=True))
    with django_capture_on_commit_callbacks(execute=True) as queued:
        change_request_transition(actor=requester, change=change, target=ChangeStatus.SUBMITTED)
    change.refresh_from_db()
    assert change.status != ChangeStatus.DRAFT  # submitted, and routed on to its approvers
    assert queued  # a notification was to be queued, and could not be
    assert any("the broker is unreachable" in record.getMessage() for record in caplog.records)
