"""A history of access for the access review: roles joined and left and tokens issued, scoped, and revoked at
known moments, each step through the real services or the group membership the triggers capture."""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.access.services import api_token_create, api_token_revoke, api_token_scope_set
from governance.calendar.services import calendar_feed_create
from governance.evidence.notes import auditor_note_add
from governance.models import AuditSample, CabMeeting, EvidenceBundle, GitHubReview
from governance.roles import Role, team_role_permission
from releases.models import GatePolicy
from tests.factories import make_ci, make_environment, make_team, make_user
from tests.governance.api_world import build_api_world


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
    """0: alice holds no role; 1: alice is a CAB member, and build-bot's token deploys payments-api (SOX scoped)
    to prod; 2: alice is a release manager instead, an SRE for the Payments team, and has an unscoped token of
    her own; 3: build-bot's token is revoked and alice's is scoped to payments-db (not SOX scoped) in dev."""
    team = make_team("payments", name="Payments")
    prod = make_environment("prod", 1, is_production=True)
    dev = make_environment("dev", 0)
    service = make_ci("payments-api", team=team, environment=prod, sox_scoped=True)
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
    assign_perm(team_role_permission(Role.SRE), alice, team)
    moments.append(moment())
    api_token_revoke(actor=admin, token=deploy)
    api_token_scope_set(actor=alice, token=own, services=[database], environments=[dev])
    moments.append(moment())
    return AccessHistory(moments=moments)


def build_read_only_world(admin, auditor) -> dict:
    """A row behind every path parameter of the site and every model of the admin, so that each write the auditor
    could try reaches a real record: the API's world, plus a CAB meeting, a GitHub review, another person's API
    token and calendar feed, an auditor's note, a bundle and a sample."""
    world = build_api_world(admin)
    now = timezone.now()
    world["gate_policy"] = GatePolicy.objects.create(environment=world["prod"], require_signature=True)
    world["meeting"] = CabMeeting.objects.create(title="Weekly CAB", starts_at=now, organiser=admin)
    world["review"] = GitHubReview.objects.create(
        delivery="d-1", repository="acme/payments", environment_name="prod", installation_id=1,
        callback_url="https://api.github.com/repos/acme/payments/actions/runs/1/deployment_protection_rule",
        state=GitHubReview.State.APPROVED, comment="ok")
    world["token"] = api_token_create(actor=admin, owner=admin, name="admin-laptop").token
    world["feed"] = calendar_feed_create(actor=admin, name="Admin's calendar").feed
    world["note"] = auditor_note_add(actor=auditor, exception_key="self_approval:CHG0000001", text="Seen.")
    world["bundle"] = EvidenceBundle.objects.create(period_start=now - timedelta(days=30), period_end=now, seed=7,
                                                    requested_by=auditor)
    world["sample"] = AuditSample.objects.create(period_start=now - timedelta(days=30), period_end=now, seed=7,
                                                 rule="all of a population of 1", population_size=1,
                                                 change_numbers=[world["approved"].number], drawn_by=auditor)
    return world
