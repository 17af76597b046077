"""Personas and clients shared by every test: one user per role, plus an outsider with no role."""

import pytest
from rest_framework.test import APIClient

from governance.roles import Role
from governance.services import api_token_create
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
    """An API client; `api.as_user(user)` authenticates it with a real bearer token of that user."""
    client = APIClient()

    def as_user(user):
        issued = api_token_create(actor=user, owner=user, name=f"test-{user.username}")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        return client

    client.as_user = as_user
    return client
