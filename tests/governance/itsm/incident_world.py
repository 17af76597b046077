"""The estate the incident tests run in: a checkout that depends on a cart, which depends on payments-api, which
depends on payments-db; a search-api of its own; production and staging; and deployments placed in time before the
incidents that the tests bring in."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from governance.itsm.incidents import incident_upsert
from releases.models import Deployment, DeploymentKind, DeploymentStatus
from tests.factories import link, make_artifact, make_ci, make_environment, make_team, make_user

# When the incidents open: fixed, so every deployment's time before them is known.
OPENED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Estate:
    prod: object
    staging: object
    checkout: object
    cart: object
    payments_api: object
    payments_db: object
    search_api: object
    deployer: object


@pytest.fixture
def estate(db) -> Estate:
    team = make_team("shop", name="Shop")
    cis = {name: make_ci(name, team=team) for name in ("checkout", "cart", "payments-api", "payments-db",
                                                       "search-api")}
    link(cis["checkout"], cis["cart"])
    link(cis["cart"], cis["payments-api"])
    link(cis["payments-api"], cis["payments-db"])
    return Estate(prod=make_environment("production", 3, is_production=True),
                  staging=make_environment("staging", 2), checkout=cis["checkout"], cart=cis["cart"],
                  payments_api=cis["payments-api"], payments_db=cis["payments-db"], search_api=cis["search-api"],
                  deployer=make_user("deployer"))


def deployed(estate: Estate, service, *, before: timedelta, status: str = DeploymentStatus.SUCCEEDED,
             environment=None, change_number: str = "") -> Deployment:
    """A deployment a pipeline reported, started `before` the incidents open."""
    return Deployment.objects.create(
        kind=DeploymentKind.REPORTED, check_id=uuid.uuid4(), service=service,
        environment=environment or estate.prod, status=status, change_number=change_number,
        artifact=make_artifact(service, f"1.{Deployment.objects.count()}.0", created_by=estate.deployer),
        reported_by=estate.deployer, started_at=OPENED - before, finished_at=OPENED - before + timedelta(minutes=5))


def servicenow_incident(sys_id: str = "a" * 32, **fields) -> dict:
    """An incident record as ServiceNow's Table API gives it."""
    return {"sys_id": sys_id, "number": "INC0010001", "short_description": "Checkout fails to take payments",
            "priority": "1 - Critical", "state": "2", "opened_at": OPENED.strftime("%Y-%m-%d %H:%M:%S"),
            "resolved_at": "", "cmdb_ci": "checkout", "sys_updated_on": "2026-11-20 12:05:00", **fields}


def incident_in(estate: Estate, **fields):
    return incident_upsert(source="servicenow", record=servicenow_incident(**fields))
