"""The incident pages and API: who reads them, who decides a suspect, the parts of each score shown adding up to it,
the fragments on the deployment and change pages, field-named refusals, the schema, and lists in a fixed number of
queries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from cmdb.models import Team
from governance.models.itsm import IncidentSuspect, SuspectStatus
from governance.roles import Role, team_role_permission
from releases.models import DeploymentStatus
from tests.factories import make_change, make_user
from tests.governance.itsm import incident_world
from tests.governance.itsm.incident_world import deployed, incident_in

estate = incident_world.estate  # the fixture

READERS = ["requester", "cab_member", "release_manager", "auditor"]
NOT_DECIDERS = ["requester", "cab_member", "auditor"]


@pytest.fixture
def incident(estate):
    deployed(estate, estate.payments_api, before=timedelta(minutes=30), status=DeploymentStatus.ROLLED_BACK,
             change_number="CHG0000101")
    deployed(estate, estate.payments_db, before=timedelta(hours=3))
    return incident_in(estate, cmdb_ci="checkout")


@pytest.mark.parametrize("persona", READERS)
def test_readers_of_changes_see_the_incidents_and_their_suspects(client, incident, persona, request):
    client.force_login(request.getfixturevalue(persona))
    listed = client.get(reverse("itsm:incident_list"))
    assert listed.status_code == 200
    assert "INC0010001" in listed.content.decode()
    page = client.get(reverse("itsm:incident_detail", args=[incident.pk]))
    assert page.status_code == 200
    assert ("Confirm as cause" in page.content.decode()) == (persona == "release_manager")


def test_an_approver_holding_the_role_for_a_team_only_reads_them_as_they_read_changes(client, api, incident, estate):
    sue = make_user("sue")
    assign_perm(team_role_permission(Role.SRE), sue, Team.objects.get(slug="shop"))
    client.force_login(sue)
    assert client.get(reverse("itsm:incident_list")).status_code == 200
    assert client.get(reverse("itsm:incident_detail", args=[incident.pk])).status_code == 200
    assert api.as_user(sue).get("/api/v1/incidents/").status_code == 200


@pytest.mark.parametrize("name", ["itsm:incident_list", "itsm:incident_detail"])
def test_people_without_a_role_that_reads_changes_are_refused(client, incident, outsider, name):
    client.force_login(outsider)
    args = [incident.pk] if name.endswith("detail") else []
    assert client.get(reverse(name, args=args)).status_code == 403


def test_the_parts_shown_add_up_to_the_score_shown(client, incident, auditor):
    client.force_login(auditor)
    html = client.get(reverse("itsm:incident_detail", args=[incident.pk])).content.decode()
    for suspect in incident.suspects.all():
        block = html.split(f'data-suspect="{suspect.pk}"')[1].split("</article>")[0]
        points = [int(cell.split("</td>")[0]) for cell in block.split('<td class="num">')[1:]]
        shown = int(block.split('<tfoot><tr><th colspan="2">Score</th><th class="num">')[1].split("<")[0])
        assert points == [part["points"] for part in suspect.parts]
        assert sum(points) == shown == suspect.score


def test_a_release_manager_confirms_a_suspect_from_the_page(client, incident, release_manager):
    client.force_login(release_manager)
    suspect = incident.suspects.get(rank=1)
    response = client.post(reverse("itsm:suspect_confirm", args=[incident.pk, suspect.pk]),
                           {"reason": "Rolled back within minutes"})
    assert response.status_code == 302
    suspect.refresh_from_db()
    assert suspect.status == SuspectStatus.CONFIRMED
    assert suspect.deployment.caused_failure


def test_a_decision_without_a_reason_is_refused_on_the_page(client, incident, release_manager):
    client.force_login(release_manager)
    suspect = incident.suspects.get(rank=1)
    response = client.post(reverse("itsm:suspect_dismiss", args=[incident.pk, suspect.pk]), {"reason": ""},
                           follow=True)
    assert "Say why." in response.content.decode()
    suspect.refresh_from_db()
    assert suspect.status == SuspectStatus.SUSPECTED


@pytest.mark.parametrize("persona", NOT_DECIDERS)
def test_others_cannot_decide_from_the_page(client, incident, persona, request):
    client.force_login(request.getfixturevalue(persona))
    suspect = incident.suspects.get(rank=1)
    response = client.post(reverse("itsm:suspect_confirm", args=[incident.pk, suspect.pk]), {"reason": "x"})
    assert response.status_code == 403
    suspect.refresh_from_db()
    assert suspect.status == SuspectStatus.SUSPECTED


def test_the_deployment_and_change_pages_load_their_suspects(client, incident, auditor, requester):
    client.force_login(auditor)
    suspect = incident.suspects.get(rank=1)
    number = suspect.deployment.number
    fragment = client.get(reverse("itsm:deployment_suspects", args=[number])).content.decode()
    assert "INC0010001" in fragment and f"#{suspect.rank}" in fragment
    fragment = client.get(reverse("itsm:change_suspects", args=["CHG0000101"])).content.decode()
    assert number in fragment
    assert "No incident suspects" in client.get(reverse("itsm:change_suspects", args=["CHG0000999"])).content.decode()
    page = client.get(reverse("deployments:deployment_detail", args=[number])).content.decode()
    assert reverse("itsm:deployment_suspects", args=[number]) in page
    change = make_change(requester, cis=[suspect.deployment.service])
    page = client.get(reverse("governance:change_detail", args=[change.number])).content.decode()
    assert reverse("itsm:change_suspects", args=[change.number]) in page


def test_the_fragments_are_refused_to_outsiders_and_unknown_deployments_are_404(client, incident, outsider, auditor):
    client.force_login(outsider)
    assert client.get(reverse("itsm:change_suspects", args=["CHG0000101"])).status_code == 403
    client.force_login(auditor)
    assert client.get(reverse("itsm:deployment_suspects", args=["DEP9999999"])).status_code == 404


def test_the_lists_take_a_fixed_number_of_queries(client, api, estate, auditor, django_assert_max_num_queries):
    for n in range(12):
        deployed(estate, estate.cart, before=timedelta(hours=n + 1))
        incident_in(estate, sys_id=f"{n:032x}", number=f"INC00200{n:02d}", cmdb_ci="checkout")
    client.force_login(auditor)
    reader = api.as_user(auditor)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("itsm:incident_list")).status_code == 200
    with django_assert_max_num_queries(12):
        assert len(reader.get("/api/v1/incidents/").json()["results"]) == 12
    incident = incident_in(estate, sys_id="f" * 32, cmdb_ci="checkout")
    with django_assert_max_num_queries(14):
        assert len(reader.get(f"/api/v1/incidents/{incident.pk}/").json()["suspects"]) == 12
    with django_assert_max_num_queries(14):
        assert client.get(reverse("itsm:incident_detail", args=[incident.pk])).status_code == 200


# --- the API ---------------------------------------------------------------------------------------------------------

def test_the_api_reads_an_incident_with_its_ranked_suspects_and_parts(api, incident, auditor):
    body = api.as_user(auditor).get(f"/api/v1/incidents/{incident.pk}/").json()
    assert body["number"] == "INC0010001" and body["affected_cis"] == ["checkout"]
    assert [s["rank"] for s in body["suspects"]] == [1, 2]
    for suspect in body["suspects"]:
        assert suspect["score"] == sum(part["points"] for part in suspect["parts"])


def test_a_release_manager_confirms_and_dismisses_through_the_api(api, incident, release_manager):
    client = api.as_user(release_manager)
    first, second = incident.suspects.order_by("rank")
    confirmed = client.post(f"/api/v1/incidents/{incident.pk}/suspects/{first.pk}/confirm/",
                            {"reason": "Rolled back"}, format="json")
    assert confirmed.status_code == 200
    assert confirmed.json()["suspects"][0]["status"] == "confirmed"
    dismissed = client.post(f"/api/v1/incidents/{incident.pk}/suspects/{second.pk}/dismiss/",
                            {"reason": "Hours earlier"}, format="json")
    assert dismissed.json()["suspects"][1]["status"] == "dismissed"
    first.deployment.refresh_from_db()
    assert first.deployment.caused_failure


@pytest.mark.parametrize(("body", "field"), [({}, "reason"), ({"reason": "x" * 1001}, "reason"),
                                             ({"reason": "x", "status": "confirmed"}, "status")])
def test_a_bad_decision_body_is_a_400_naming_the_field(api, incident, release_manager, body, field):
    suspect = incident.suspects.first()
    response = api.as_user(release_manager).post(
        f"/api/v1/incidents/{incident.pk}/suspects/{suspect.pk}/confirm/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert IncidentSuspect.objects.get(pk=suspect.pk).status == SuspectStatus.SUSPECTED


@pytest.mark.parametrize("persona", NOT_DECIDERS)
def test_only_release_managers_decide_through_the_api(api, incident, persona, request):
    suspect = incident.suspects.first()
    response = api.as_user(request.getfixturevalue(persona)).post(
        f"/api/v1/incidents/{incident.pk}/suspects/{suspect.pk}/dismiss/", {"reason": "x"}, format="json")
    assert response.status_code == 403


def test_outsiders_and_anonymous_callers_cannot_read_incidents(api, incident, outsider):
    assert api.as_user(outsider).get("/api/v1/incidents/").status_code == 403
    assert api.get("/api/v1/incidents/").status_code in (401, 403)


def test_a_suspect_of_another_incident_or_an_unknown_one_is_404(api, incident, estate, release_manager):
    other = incident_in(estate, sys_id="e" * 32, cmdb_ci="cart")
    client = api.as_user(release_manager)
    suspect = incident.suspects.first()
    assert client.post(f"/api/v1/incidents/{other.pk}/suspects/{suspect.pk}/confirm/", {"reason": "x"},
                       format="json").status_code == 404
    assert client.post(f"/api/v1/incidents/{incident.pk}/suspects/999999999999999999/confirm/", {"reason": "x"},
                       format="json").status_code == 404


def test_the_incidents_api_is_in_the_schema(api, auditor):
    paths = api.as_user(auditor).get("/api/schema/?format=json").json()["paths"]
    assert {"/api/v1/incidents/", "/api/v1/incidents/{id}/", "/api/v1/incidents/{id}/suspects/{sid}/confirm/",
            "/api/v1/incidents/{id}/suspects/{sid}/dismiss/"} <= set(paths)
