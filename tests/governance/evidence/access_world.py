"""A history of access for the access review: roles joined and left and tokens issued, scoped, and revoked at
known moments, each step through the real services or the group membership the triggers capture."""

import time
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import Group
from django.utils import timezone

from governance.access.services import api_token_create, api_token_revoke, api_token_scope_set
from governance.roles import Role
from tests.factories import make_ci, make_environment, make_team, make_user


@dataclass
class AccessHistory:
    """`moments[i]` falls after step i and before step i + 1."""

    moments: list[datetime]


def moment() -> datetime:
    """A moment strictly between the ledger times of the writes before and after it."""
    time.sleep(0.005)
    now = timezone.now()
    time.sleep(0.005)
    return now


def build_access_history(admin) -> AccessHistory:
    """0: alice holds no role; 1: alice is a CAB member, and build-bot's token deploys payments-api to prod;
    2: alice is a release manager instead, and has an unscoped token of her own; 3: build-bot's token is
    revoked and alice's is scoped to payments-db in dev."""
    team = make_team("payments", name="Payments")
    prod = make_environment("prod", 1, is_production=True)
    dev = make_environment("dev", 0)
    service = make_ci("payments-api", team=team, environment=prod)
    database = make_ci("payments-db", team=team, ci_type="database", environment=prod)
    alice = make_user("alice")
    bot = make_user("build-bot", Role.SERVICE_ACCOUNT)
    moments = [moment()]
    alice.groups.add(Group.objects.get(name=Role.CAB_MEMBER))
    deploy = api_token_create(actor=admin, owner=bot, name="deploy", services=[service], environments=[prod]).token
    moments.append(moment())
    alice.groups.remove(Group.objects.get(name=Role.CAB_MEMBER))
    alice.groups.add(Group.objects.get(name=Role.RELEASE_MANAGER))
    own = api_token_create(actor=alice, owner=alice, name="laptop").token
    moments.append(moment())
    api_token_revoke(actor=admin, token=deploy)
    api_token_scope_set(actor=alice, token=own, services=[database], environments=[dev])
    moments.append(moment())
    return AccessHistory(moments=moments)
