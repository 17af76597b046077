"""Fixtures shared by the areas' tests: the environments and the CIs that changes and freezes are about. A test
module that needs another shape of the same name defines its own, which takes precedence."""

from types import SimpleNamespace

import pytest

from tests.factories import make_ci, make_environment, make_team


@pytest.fixture
def staging(db):
    return make_environment("staging", 2)


@pytest.fixture
def prod(db):
    return make_environment("prod", 3, is_production=True)


@pytest.fixture
def envs(prod, staging):
    """Both environments, as `envs.prod` and `envs.staging`."""
    return SimpleNamespace(prod=prod, staging=staging)


@pytest.fixture
def payments_api(team):
    return make_ci("payments-api", team=team, criticality=3)


@pytest.fixture
def search_team(db):
    return make_team("search", name="Search")


@pytest.fixture
def search_api(search_team):
    return make_ci("search-api", team=search_team, criticality=3)
