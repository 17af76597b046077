"""Personas and clients shared by every test: one user per role, plus an outsider with no role."""

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from governance.access.services import api_token_create
from governance.roles import Role
from tests.factories import make_team, make_user


@pytest.fixture
def requester(db):
    return make_user("requester", Role.REQUESTER)


@pytest.fixture
def cab_member(db):
    return make_user("cab_member", Role.CAB_MEMBER)


@pytest.fixture
def release_manager(db):
    return make_user("release_manager", Role.RELEASE_MANAGER)


@pytest.fixture
def auditor(db):
    return make_user("auditor", Role.AUDITOR)


@pytest.fixture
def admin_user(db):
    return make_user("admin", Role.ADMIN, is_staff=True)


@pytest.fixture
def pipeline(db):
    return make_user("pipeline", Role.SERVICE_ACCOUNT)


@pytest.fixture
def outsider(db):
    """Authenticated, but holds no Changeboard role."""
    return make_user("outsider")


@pytest.fixture
def team(db):
    return make_team("payments", name="Payments")


@pytest.fixture
def api():
    """An API client; `api.as_user(user)` gives that person a client of their own, authenticated with a real
    bearer token made once, so one test can act as several people without their requests mixing."""
    client = APIClient()
    clients: dict[int, APIClient] = {}

    def as_user(user):
        if user.pk not in clients:
            issued = api_token_create(actor=user, owner=user, name=f"test-{user.username}")
            clients[user.pk] = APIClient()
            clients[user.pk].credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        return clients[user.pk]

    client.as_user = as_user
    return client


def database_url_of(settings_dict: dict) -> str:
    """A URL for the test database, so processes the tests start use the same one."""
    host = quote(settings_dict["HOST"] or "", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict["PORT"] else ""
    password = f":{quote(settings_dict['PASSWORD'], safe='')}" if settings_dict["PASSWORD"] else ""
    return f"postgres://{settings_dict['USER']}{password}@{host}{port}/{settings_dict['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real Celery worker on this run's queue, using the test database; stopped after the test."""
    from django.conf import settings
    from django.db import connection

    from governance.celery import app

    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": database_url_of(connection.settings_dict), "REDIS_URL": settings.REDIS_URL}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "worker", "-P", "solo", "--hostname", hostname,
         "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
         "--include", "tests.worker_tasks"],
        env=env, cwd=settings.BASE_DIR,
    )
    try:
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[hostname], timeout=0.5):
            assert worker.poll() is None, "the Celery worker exited during start-up"
            assert time.monotonic() < deadline, "the Celery worker did not answer within 30 s"
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=20)


@pytest.fixture
def migration_data(transactional_db):
    """The roles, permissions and default policies that data migrations made. A transactional test that ran
    before empties every table when it ends, so the (idempotent) governance data migrations run again."""
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.migrations import RunPython
    from django.db.migrations.loader import MigrationLoader

    from governance.models import ApprovalPolicy

    if Group.objects.filter(name="cab_member", permissions__isnull=False).exists() and ApprovalPolicy.objects.exists():
        return
    loader = MigrationLoader(connection)
    state_apps = loader.project_state().apps
    for key in sorted(key for key in loader.disk_migrations if key[0] == "governance"):
        for operation in loader.disk_migrations[key].operations:
            if isinstance(operation, RunPython):
                operation.code(state_apps, None)


@pytest.fixture
def json_log():
    """The process log's lines, as the configured formatter writes them, parsed: a list that fills as the test
    runs. Every logger is let through at INFO meanwhile."""
    import io
    import json
    import logging

    import structlog

    root = logging.getLogger()
    configured = next(handler.formatter for handler in root.handlers
                      if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    class Lines(list):
        def events(self, name: str) -> list[dict]:
            self[:] = [json.loads(line) for line in stream.getvalue().splitlines()]
            return [line for line in self if line["event"] == name]

    try:
        yield Lines()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
