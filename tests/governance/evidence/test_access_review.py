"""The access review tells who held which role and what each token could act for at any moment, from the ledger:
it still tells it after today's rows are deleted or changed."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from cmdb.models import ConfigurationItem, Team
from governance.evidence.access_review import ANY, access_at, access_review
from governance.evidence.period import Period
from governance.models import ApiToken
from governance.roles import Role, team_role_permission
from tests.governance.evidence.access_world import build_access_history, moment

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(admin_user):
    return build_access_history(admin_user)


def grants(rows, subject: str) -> set[tuple]:
    """What `subject` held, each as (kind, grant, services, environments); a token by its name only."""
    return {(row.kind, row.grant.split(" (")[0], row.services, row.environments) for row in rows
            if row.subject == subject}


ALICE_AT = [
    set(),
    {("role", Role.CAB_MEMBER, (ANY,), (ANY,))},
    {("role", Role.RELEASE_MANAGER, (ANY,), (ANY,)), ("role", Role.SRE, ("team Payments",), (ANY,)),
     ("token", "laptop", (ANY,), (ANY,))},
    {("role", Role.RELEASE_MANAGER, (ANY,), (ANY,)), ("role", Role.SRE, ("team Payments",), (ANY,)),
     ("token", "laptop", ("payments-db",), ("dev",))},
]
BOT_AT = [
    {("role", Role.SERVICE_ACCOUNT, (ANY,), (ANY,))},
    {("role", Role.SERVICE_ACCOUNT, (ANY,), (ANY,)), ("token", "deploy", ("payments-api",), ("prod",))},
    {("role", Role.SERVICE_ACCOUNT, (ANY,), (ANY,)), ("token", "deploy", ("payments-api",), ("prod",))},
    {("role", Role.SERVICE_ACCOUNT, (ANY,), (ANY,))},
]


def test_access_at_each_moment_is_what_was_held_then(history):
    for index, at in enumerate(history.moments):
        rows = access_at(at)
        assert grants(rows, "alice") == ALICE_AT[index], index
        assert grants(rows, "build-bot") == BOT_AT[index], index


def test_the_review_still_tells_what_was_held_after_todays_rows_are_deleted_and_changed(history):
    ApiToken.objects.all().delete()
    UserObjectPermission.objects.all().delete()
    User.objects.get(username="alice").groups.clear()
    User.objects.get(username="build-bot").groups.set([Group.objects.get(name=Role.ADMIN)])
    ConfigurationItem.objects.filter(name="payments-api").delete()
    with connection.cursor() as cursor:  # behind the services' back, as a database session outside Changeboard
        cursor.execute("DELETE FROM auth_user_groups")
    for index, at in enumerate(history.moments):
        rows = access_at(at)
        assert grants(rows, "alice") == ALICE_AT[index], index
        assert grants(rows, "build-bot") == BOT_AT[index], index
    assert grants(access_at(history.moments[-1] + timedelta(days=1)), "alice") == set()


def test_a_role_held_for_one_team_names_the_team_as_the_ledger_last_recorded_it(history):
    Team.objects.filter(slug="payments").update(name="Checkout")
    held = access_at(history.moments[2])
    assert ("role", Role.SRE, ("team Checkout",), (ANY,)) in grants(held, "alice")
    [sre] = [row for row in held if row.grant == Role.SRE]
    assert sre.source.startswith("ledger guardian.userobjectpermission #")


def test_the_review_of_a_period_gives_every_grant_overlapping_it_with_when_it_began_and_ended(history):
    t0, t1, t2, t3 = history.moments
    rows = access_review(Period(start=t1, end=t2))
    assert grants(rows, "alice") == ALICE_AT[1] | ALICE_AT[2]
    [cab] = [row for row in rows if row.subject == "alice" and row.grant == Role.CAB_MEMBER]
    assert t0 < cab.held_from < t1 < cab.held_until < t2
    [deploy] = [row for row in rows if row.subject == "build-bot" and row.kind == "token"]
    assert t0 < deploy.held_from < t1 and t2 < deploy.held_until < t3
    assert deploy.source.startswith("ledger governance.apitoken #") and " to #" in deploy.source
    [manager] = [row for row in rows if row.grant == Role.RELEASE_MANAGER]
    assert t1 < manager.held_from < t2 and manager.held_until is None


def test_a_token_whose_scope_changed_is_one_row_per_scope_held(history):
    t0, *_, t3 = history.moments
    laptop = sorted((row for row in access_review(Period(start=t0, end=t3)) if row.grant.startswith("laptop")),
                    key=lambda row: row.held_from)
    assert [(row.services, row.environments) for row in laptop] == [((ANY,), (ANY,)), (("payments-db",), ("dev",))]
    assert laptop[0].held_until == laptop[1].held_from and laptop[1].held_until is None


def test_a_period_before_anything_was_granted_reviews_only_what_was_held_then(history):
    t0 = history.moments[0]
    rows = access_review(Period(start=t0 - timedelta(days=30), end=t0))
    assert grants(rows, "alice") == set()
    assert grants(rows, "build-bot") == BOT_AT[0]


def test_a_sox_review_leaves_out_a_token_that_reached_no_sox_scoped_service(history):
    t0, *_, t3 = history.moments
    period = Period(start=t0, end=t3 + timedelta(days=1))
    everything = {(row.grant.split(" (")[0], row.services) for row in access_review(period) if row.kind == "token"}
    sox = {(row.grant.split(" (")[0], row.services) for row in access_review(replace(period, scope="sox"))
           if row.kind == "token"}
    assert ("laptop", ("payments-db",)) in everything and ("laptop", ("payments-db",)) not in sox
    assert {("deploy", ("payments-api",)), ("laptop", (ANY,))} <= sox
    assert {(row.subject, row.grant) for row in access_review(replace(period, scope="phi")) if row.kind == "token"
            and row.services != (ANY,)} == set()


REVIEW = "/api/v1/audit/access-review/"


def test_the_api_gives_the_review_for_a_period_and_at_a_moment(api, auditor, history):
    client = api.as_user(auditor)
    _, t1, t2, t3 = history.moments
    period = client.get(REVIEW, {"start": t1.isoformat(), "end": t2.isoformat()})
    assert period.status_code == 200, period.json()
    body = period.json()
    assert body["columns"][:3] == ["subject", "kind", "grant"]
    alice = {(row["kind"], row["grant"].split(" (")[0]) for row in body["rows"] if row["subject"] == "alice"}
    assert alice == {("role", Role.CAB_MEMBER), ("role", Role.RELEASE_MANAGER), ("role", Role.SRE), ("token", "laptop")}
    at = client.get(REVIEW, {"at": t3.isoformat()}).json()
    assert {(row["kind"], tuple(row["services"])) for row in at["rows"] if row["subject"] == "alice"} == {
        ("role", (ANY,)), ("role", ("team Payments",)), ("token", ("payments-db",))}


def test_an_administrator_reads_the_review_and_a_release_manager_does_not(api, admin_user, release_manager):
    assert api.as_user(admin_user).get(REVIEW, {"start": "2026-01-01", "end": "2026-03-31"}).status_code == 200
    assert api.as_user(release_manager).get(REVIEW, {"start": "2026-01-01", "end": "2026-03-31"}).status_code == 403


@pytest.mark.parametrize(("params", "field"), [
    ({}, "start"), ({"start": "2026-01-01"}, "end"), ({"start": "yesterday", "end": "2026-01-02"}, "start"),
    ({"start": "2026-02-01", "end": "2026-01-01"}, "end"), ({"start": "2026-01-01", "end": "2026-01-31",
                                                            "scope": "pci"}, "scope"),
    ({"start": "2026-01-01\x00", "end": "2026-01-31"}, "start"), ({"at": "soon"}, "at"), ({"at": ""}, "at"),
    ({"at": "2026-01-01T00:00:00+23:00"}, "at"),
])
def test_bad_input_is_a_400_naming_the_field(api, auditor, params, field):
    response = api.as_user(auditor).get(REVIEW, params)
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]], response.json()


def test_a_team_role_granted_to_a_group_is_held_by_its_members_until_withdrawn(history):
    approvers = Group.objects.create(name="payments-approvers")
    team = Team.objects.get(slug="payments")
    assign_perm(team_role_permission(Role.CAB_MEMBER), approvers, team)
    during = moment()
    remove_perm(team_role_permission(Role.CAB_MEMBER), approvers, team)
    after = moment()
    assert grants(access_at(during), "members of payments-approvers") == {
        ("role", Role.CAB_MEMBER, ("team Payments",), (ANY,))}
    assert grants(access_at(after), "members of payments-approvers") == set()
