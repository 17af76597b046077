"""A change's history panel (the ledger's events for it, loaded into the change page): fields by their names, people,
CIs and environments by name, looked up once per kind whatever the length, and long histories folded."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.calendar.services import lockdown_declare
from governance.changes.services import change_request_transition
from governance.models import ChangeRequest, ChangeStatus
from governance.roles import Role
from tests.factories import make_change, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
RAW_COLUMNS = ("held_by_id", "requester_id", "implementer_id", "environment_id", "impacted_ci_ids", "updated_at")
# Session, user, the user's and their groups' permissions, sealing the ledger first (its lock, the captures
# waiting, and the savepoint around them), the events, then one query per kind of object named: people,
# environments, CIs. Whatever the length of the history.
PANEL_QUERY_BOUND = 12


def history_url(change: ChangeRequest) -> str:
    return f"/audit/history/governance.changerequest/{change.pk}/"


@pytest.fixture
def world(team, requester):
    staging = make_environment("staging", 2)
    prod = make_environment("prod", 3, is_production=True)
    db = make_ci("payments-db", team=team, ci_type="database", criticality=2)
    api = make_ci("payments-api", team=team, criticality=3)
    web = make_ci("online-banking", team=make_team("digital", name="Digital"), criticality=2)
    ivan = make_user("ivan", Role.REQUESTER)
    change = make_change(requester, cis=[api], environment=staging, implementer=ivan, title="Upgrade payments-api")
    return {"staging": staging, "prod": prod, "cis": [db, api, web], "ivan": ivan, "change": change}


def rewrite(world, times: int) -> None:
    """`times` audited writes of the change, each moving its window, its implementer, its environment and its
    blast radius (as a bulk update would; each is one event)."""
    change, people = world["change"], [world["ivan"], make_user(f"olga{times}", Role.REQUESTER)]
    for n in range(times):
        start = timezone.now() + timedelta(days=3, hours=n)
        ChangeRequest.objects.filter(pk=change.pk).update(
            planned_start=start, planned_end=start + timedelta(hours=2), implementer=people[n % 2],
            environment=world["prod"] if n % 2 else world["staging"],
            impacted_ci_ids=[ci.pk for ci in world["cis"][: 1 + n % 3]])


def panel(client, change) -> str:
    response = client.get(history_url(change), **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def test_the_panel_names_fields_people_cis_and_environments_not_columns_and_ids(client, cab_member, requester,
                                                                                world):
    change = change_request_transition(actor=requester, change=world["change"], target=ChangeStatus.SUBMITTED)
    rewrite(world, 2)
    ChangeRequest.objects.filter(pk=change.pk).update(status=ChangeStatus.APPROVED)  # a lockdown holds it
    lockdown_declare(actor=make_user("rm", Role.RELEASE_MANAGER), reason="Payments outage INC-42",
                     scope={"everything": True})
    client.force_login(cab_member)
    html = panel(client, change)
    for column in RAW_COLUMNS:
        assert f"<td>{column}</td>" not in html, column
    assert '<tr><td>Requester</td><td class="after">requester</td></tr>' in html  # the creation: its values alone
    assert re.search(r'<tr><td>Implementer</td><td class="before">ivan</td><td class="after">olga2</td></tr>', html)
    assert '<td>Environment</td><td class="before">staging</td><td class="after">prod</td>' in html
    assert '<td>Blast radius</td><td class="before">payments-db</td><td class="after">payments-db, payments-api</td>' \
        in html
    assert '<td>Status</td><td class="before">Assessed</td><td class="after">CAB review</td>' in html
    assert re.search(r"<td>Held by</td><td class=\"before\">—</td><td class=\"after\">lockdown [^<]*Payments outage",
                     html)
    assert "<td>Planned start</td>" in html and " UTC</td>" in html
    # The assessment: each risk factor on a line, and the CIs' compliance at submission by name.
    assert "criticality: most critical affected CI is tier 3 (+10)<br>" in html
    assert '<td>Compliance at submission</td><td class="before">—</td><td class="after">payments-api: tier 3</td>' \
        in html


def test_a_long_history_shows_the_newest_five_and_folds_the_rest(client, cab_member, world):
    rewrite(world, 30)
    client.force_login(cab_member)
    html = panel(client, world["change"])
    shown, folded = html.split('<details class="earlier">', 1)
    assert shown.count('<article class="event">') == 5
    assert folded.count('<article class="event">') == 26  # 25 more writes and the creation
    assert "<summary>26 earlier events</summary>" in folded


def test_the_panel_takes_the_same_queries_for_a_short_or_a_long_history(client, cab_member, world,
                                                                        django_assert_max_num_queries):
    client.force_login(cab_member)
    rewrite(world, 3)
    panel(client, world["change"])  # seals what the writes captured
    with CaptureQueriesContext(connection) as short:
        panel(client, world["change"])
    rewrite(world, 60)
    panel(client, world["change"])
    with django_assert_max_num_queries(PANEL_QUERY_BOUND), CaptureQueriesContext(connection) as long:
        html = panel(client, world["change"])
    assert html.count('<article class="event">') == 64
    assert len(long) == len(short), [q["sql"][:80] for q in long]


def test_the_change_page_with_a_long_history_keeps_its_budget(client, cab_member, world):
    client.force_login(cab_member)
    url = f"/changes/{world['change'].number}/"
    client.get(url)
    with CaptureQueriesContext(connection) as short:
        assert client.get(url).status_code == 200
    rewrite(world, 60)
    with CaptureQueriesContext(connection) as long:
        body = client.get(url).content.decode()
    assert len(long) == len(short)
    assert f'id="ledger-history" hx-get="{history_url(world["change"])}"' in body  # the panel loads in place


def test_a_ci_gone_from_the_cmdb_is_shown_by_its_id(client, auditor, world):
    gone = make_ci("old-batch", team=world["cis"][0].owner_team)
    ChangeRequest.objects.filter(pk=world["change"].pk).update(impacted_ci_ids=[gone.pk])
    gone_pk = gone.pk
    gone.delete()
    client.force_login(auditor)
    assert f'<td class="after">#{gone_pk} (deleted)</td>' in panel(client, world["change"])


def test_the_ci_page_history_names_its_team(client, cab_member, world):
    ci = world["cis"][1]
    ci.criticality = 1
    ci.save()
    client.force_login(cab_member)
    html = client.get(f"/audit/history/cmdb.configurationitem/{ci.pk}/", **HTMX).content.decode()
    assert '<tr><td>Owner team</td><td class="after">Payments</td></tr>' in html
    assert "owner_team_id" not in html
