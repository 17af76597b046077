"""The CMDB REST API under /api/v1/: reading, filtering, writing, its error shape, permissions and cost."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from cmdb.models import ConfigurationItem, Environment, Relationship, Team
from governance.roles import Role
from tests.factories import link, make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db

CIS = "/api/v1/cis/"
TEAMS = "/api/v1/teams/"
ENVIRONMENTS = "/api/v1/environments/"
RELATIONSHIPS = "/api/v1/relationships/"


def ci_url(ci) -> str:
    return f"{CIS}{ci.pk}/"


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(item["name"] for item in response.json()["results"])


def error_fields(response) -> list[str | None]:
    """The fields named by an error response, after checking it has the one error shape."""
    body = response.json()
    assert set(body) == {"errors"}, body
    assert body["errors"], body
    for error in body["errors"]:
        assert {"code", "message", "field"} <= set(error), error
        assert error["message"]
    return [error["field"] for error in body["errors"]]


def field_named(response, prefix: str) -> bool:
    return any(field is not None and field.split(".")[0].split("[")[0] == prefix for field in error_fields(response))


@pytest.fixture
def search_team(db):
    return make_team("search", name="Search")


@pytest.fixture
def estate(team, search_team):
    """Four CIs over two teams and two environments, with tags, flags and descriptions to filter on."""
    staging = make_environment("staging", 1)
    prod = make_environment("prod", 2, is_production=True)
    cis = [
        make_ci("payments-api", team=team, criticality=1, environment=prod, tags=["edge", "pci"], sox_scoped=True,
                description="Takes card payments"),
        make_ci("payments-db", team=team, ci_type="database", criticality=1, environment=prod, sox_scoped=True),
        make_ci("search-api", team=search_team, criticality=3, environment=staging, tags=["edge"]),
        make_ci("search-index", team=search_team, ci_type="storage", criticality=4,
                description="Index of the product catalogue"),
    ]
    return {ci.name: ci for ci in cis}


@pytest.fixture
def admin_api(api, admin_user):
    return api.as_user(admin_user)


@pytest.fixture
def reader_api(api, cab_member):
    return api.as_user(cab_member)


@pytest.fixture
def maintainer(team):
    """A requester who maintains the payments team's CIs through a per-team (guardian) permission."""
    user = make_user("maintainer", Role.REQUESTER)
    assign_perm("cmdb.manage_team_cis", user, team)
    return user


def new_ci(**fields) -> dict:
    return {"name": "ledger", "type": "service", "owner_team": "payments", "criticality": 2, **fields}


# Reading and filtering


def test_a_cab_member_lists_cis_with_their_team_and_environment_by_name(reader_api, estate):
    response = reader_api.get(CIS)
    assert names(response) == ["payments-api", "payments-db", "search-api", "search-index"]
    api_row = next(r for r in response.json()["results"] if r["name"] == "payments-api")
    assert api_row["owner_team"] == "payments"
    assert api_row["environment"] == "prod"
    assert api_row["type"] == "service"
    assert api_row["tags"] == ["edge", "pci"]
    assert api_row["sox_scoped"] is True


def test_a_ci_is_read_by_id(reader_api, estate):
    response = reader_api.get(ci_url(estate["payments-db"]))
    assert response.status_code == 200
    assert response.json()["name"] == "payments-db"
    assert response.json()["type"] == "database"


def test_reading_an_unknown_ci_is_a_404_in_the_error_shape(reader_api, estate):
    response = reader_api.get(f"{CIS}999999/")
    assert response.status_code == 404
    assert error_fields(response) == [None]


@pytest.mark.parametrize(("query", "expected"), [
    ("ci_type=database", ["payments-db"]),
    ("ci_type=database&ci_type=storage", ["payments-db", "search-index"]),
    ("criticality=1", ["payments-api", "payments-db"]),
    ("criticality=3&criticality=4", ["search-api", "search-index"]),
    ("owner_team=search", ["search-api", "search-index"]),
    ("environment=prod", ["payments-api", "payments-db"]),
    ("environment=staging", ["search-api"]),
    ("tag=edge", ["payments-api", "search-api"]),
    ("tag=pci", ["payments-api"]),
    ("sox_scoped=true", ["payments-api", "payments-db"]),
    ("sox_scoped=false", ["search-api", "search-index"]),
    ("q=search", ["search-api", "search-index"]),
    ("q=CARD", ["payments-api"]),  # description, whatever the case
    ("q=pci", ["payments-api"]),  # a tag
    ("owner_team=payments&criticality=1&ci_type=service", ["payments-api"]),
    ("search=catalogue", ["search-index"]),
    ("search=payments", ["payments-api", "payments-db"]),
])
def test_the_ci_list_is_narrowed_by_filters(reader_api, estate, query, expected):
    assert names(reader_api.get(f"{CIS}?{query}")) == expected


@pytest.mark.parametrize(("query", "field"), [
    ("ci_type=spaceship", "ci_type"),
    ("criticality=9", "criticality"),
    ("owner_team=no-such-team", "owner_team"),
    ("environment=moon", "environment"),
])
def test_an_unknown_filter_value_is_a_400_naming_the_filter(reader_api, estate, query, field):
    response = reader_api.get(f"{CIS}?{query}")
    assert response.status_code == 400
    assert field_named(response, field)


def test_the_ci_list_is_ordered_on_request(reader_api, estate):
    response = reader_api.get(f"{CIS}?ordering=-criticality,name")
    assert [r["name"] for r in response.json()["results"]] == [
        "search-index", "search-api", "payments-api", "payments-db"]


def test_the_ci_list_is_paginated_with_count_next_and_page_size(reader_api, estate):
    first = reader_api.get(f"{CIS}?page_size=3").json()
    assert first["count"] == 4
    assert [r["name"] for r in first["results"]] == ["payments-api", "payments-db", "search-api"]
    assert first["previous"] is None
    assert "page=2" in first["next"]
    second = reader_api.get(first["next"]).json()
    assert [r["name"] for r in second["results"]] == ["search-index"]
    assert second["next"] is None
    assert second["previous"] is not None


def test_a_page_past_the_end_is_a_404(reader_api, estate):
    assert reader_api.get(f"{CIS}?page=9").status_code == 404


def test_the_other_lists_are_paginated_too(reader_api, estate):
    for url, count in ((TEAMS, 2), (ENVIRONMENTS, 2), (RELATIONSHIPS, 0)):
        body = reader_api.get(f"{url}?page_size=1").json()
        assert body["count"] == count
        assert len(body["results"]) == min(count, 1)


def test_teams_are_listed_and_searched(reader_api, estate):
    assert [t["slug"] for t in reader_api.get(TEAMS).json()["results"]] == ["payments", "search"]
    assert [t["slug"] for t in reader_api.get(f"{TEAMS}?search=sear").json()["results"]] == ["search"]


def test_environments_are_listed_in_promotion_order_and_filtered(reader_api, estate):
    make_environment("dev", 0)
    assert [e["name"] for e in reader_api.get(ENVIRONMENTS).json()["results"]] == ["dev", "staging", "prod"]
    production = reader_api.get(f"{ENVIRONMENTS}?is_production=true").json()["results"]
    assert [e["name"] for e in production] == ["prod"]


def test_relationships_are_listed_by_ci_name_and_filtered(reader_api, estate):
    link(estate["payments-api"], estate["payments-db"])
    link(estate["search-api"], estate["search-index"], "connects_to")
    link(estate["payments-api"], estate["search-api"], "connects_to")
    everything = reader_api.get(RELATIONSHIPS).json()
    assert everything["count"] == 3
    assert {"source": "payments-api", "target": "payments-db", "type": "depends_on"}.items() <= (
        everything["results"][0].items())
    touching = reader_api.get(f"{RELATIONSHIPS}?ci=SEARCH-API").json()["results"]
    assert {(r["source"], r["target"]) for r in touching} == {
        ("search-api", "search-index"), ("payments-api", "search-api")}
    by_type = reader_api.get(f"{RELATIONSHIPS}?rel_type=depends_on").json()["results"]
    assert [(r["source"], r["target"]) for r in by_type] == [("payments-api", "payments-db")]
    from_source = reader_api.get(f"{RELATIONSHIPS}?source=payments-api").json()["results"]
    assert {r["target"] for r in from_source} == {"payments-db", "search-api"}


# Writing


def test_admin_creates_a_ci_and_its_tags_are_normalised(admin_api, team, estate):
    response = admin_api.post(CIS, new_ci(environment="prod", tags=["pci", "edge", "pci"],
                                          attributes={"runtime": "jvm"}), format="json")
    assert response.status_code == 201, response.content
    ci = ConfigurationItem.objects.get(name="ledger")
    assert (ci.ci_type, ci.criticality, ci.owner_team, ci.environment.name) == ("service", 2, team, "prod")
    assert ci.tags == ["edge", "pci"]
    assert ci.attributes == {"runtime": "jvm"}
    assert response.json()["id"] == ci.pk
    assert response.json()["tags"] == ["edge", "pci"]


def test_admin_updates_a_ci_partially(admin_api, estate):
    ci = estate["search-api"]
    response = admin_api.patch(ci_url(ci), {"criticality": 2, "lifecycle_status": "maintenance",
                                            "compliance_reason": "now business critical"}, format="json")
    assert response.status_code == 200, response.content
    ci.refresh_from_db()
    assert (ci.criticality, ci.lifecycle_status, ci.name) == (2, "maintenance", "search-api")


def test_admin_replaces_a_ci_with_put(admin_api, estate, team):
    ci = estate["search-index"]
    response = admin_api.put(ci_url(ci), new_ci(name="search-index", type="database", criticality=1,
                                                compliance_reason="holds the payments index"), format="json")
    assert response.status_code == 200, response.content
    ci.refresh_from_db()
    assert (ci.ci_type, ci.criticality, ci.owner_team) == ("database", 1, team)


def test_admin_may_rename_a_ci_to_a_new_case_of_its_own_name(admin_api, estate):
    ci = estate["search-api"]
    response = admin_api.patch(ci_url(ci), {"name": "Search-API"}, format="json")
    assert response.status_code == 200, response.content
    ci.refresh_from_db()
    assert ci.name == "Search-API"


def test_admin_deletes_a_ci_and_its_relationships_go_with_it(admin_api, estate):
    link(estate["payments-api"], estate["payments-db"])
    response = admin_api.delete(ci_url(estate["payments-db"]))
    assert response.status_code == 204
    assert not ConfigurationItem.objects.filter(name="payments-db").exists()
    assert not Relationship.objects.exists()


def test_admin_creates_updates_and_deletes_teams_and_environments(admin_api):
    assert admin_api.post(TEAMS, {"name": "Platform", "slug": "platform"}, format="json").status_code == 201
    team = Team.objects.get(slug="platform")
    assert admin_api.patch(f"{TEAMS}{team.pk}/", {"email": "platform@example.com"}, format="json").status_code == 200
    team.refresh_from_db()
    assert team.email == "platform@example.com"
    response = admin_api.post(ENVIRONMENTS, {"name": "prod", "position": 3, "is_production": True,
                                             "owner_team": "platform"}, format="json")
    assert response.status_code == 201, response.content
    env = Environment.objects.get(name="prod")
    assert (env.position, env.is_production, env.owner_team) == (3, True, team)
    assert admin_api.delete(f"{ENVIRONMENTS}{env.pk}/").status_code == 204
    assert admin_api.delete(f"{TEAMS}{team.pk}/").status_code == 204
    assert not Team.objects.exists()
    assert not Environment.objects.exists()


def test_deleting_a_team_that_still_owns_cis_is_a_409_that_says_why(admin_api, estate, team):
    response = admin_api.delete(f"{TEAMS}{team.pk}/")
    assert response.status_code == 409
    assert error_fields(response) == [None]
    assert response.json()["errors"][0]["code"] == "protected"
    assert "retry" not in response.json()["errors"][0]["message"]
    assert Team.objects.filter(pk=team.pk).exists()


def test_deleting_an_environment_that_still_holds_cis_is_a_409(admin_api, estate):
    prod = Environment.objects.get(name="prod")
    assert admin_api.delete(f"{ENVIRONMENTS}{prod.pk}/").status_code == 409
    assert Environment.objects.filter(pk=prod.pk).exists()


def test_an_environment_position_already_taken_is_a_400_naming_position(admin_api, estate):
    response = admin_api.post(ENVIRONMENTS, {"name": "qa", "position": 1}, format="json")
    assert response.status_code == 400
    assert field_named(response, "position")
    assert not Environment.objects.filter(name="qa").exists()


def test_admin_creates_and_deletes_a_relationship_by_ci_names(admin_api, estate):
    response = admin_api.post(RELATIONSHIPS, {"source": "payments-api", "target": "payments-db",
                                              "type": "depends_on"}, format="json")
    assert response.status_code == 201, response.content
    edge = Relationship.objects.get()
    assert (edge.source.name, edge.target.name, edge.rel_type) == ("payments-api", "payments-db", "depends_on")
    assert admin_api.delete(f"{RELATIONSHIPS}{edge.pk}/").status_code == 204
    assert not Relationship.objects.exists()


def test_a_relationship_may_name_its_cis_in_any_case(admin_api, estate):
    response = admin_api.post(RELATIONSHIPS, {"source": "PAYMENTS-API", "target": "Payments-DB",
                                              "type": "depends_on"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["source"], response.json()["target"]) == ("payments-api", "payments-db")
    edge = Relationship.objects.get()
    assert (edge.source, edge.target) == (estate["payments-api"], estate["payments-db"])


# Validation: 400, one error shape naming the field, and nothing written


@pytest.mark.parametrize(("fields", "field"), [
    ({"criticality": 5}, "criticality"),
    ({"criticality": 0}, "criticality"),
    ({"criticality": "high"}, "criticality"),
    ({"owner_team": "no-such-team"}, "owner_team"),
    ({"type": "mainframe"}, "type"),
    ({"lifecycle_status": "zombie"}, "lifecycle_status"),
    ({"environment": "moon"}, "environment"),
    ({"name": "ledger api"}, "name"),
    ({"name": "-ledger"}, "name"),
    ({"name": ""}, "name"),
    ({"attributes": ["not", "an", "object"]}, "attributes"),
    ({"attributes": "runtime=jvm"}, "attributes"),
    ({"tags": ["Upper"]}, "tags"),
    ({"tags": ["has space"]}, "tags"),
    ({"tags": "edge"}, "tags"),
])
def test_creating_a_ci_with_bad_input_is_a_400_naming_the_field_and_writes_nothing(admin_api, estate, fields, field):
    before = ConfigurationItem.objects.count()
    response = admin_api.post(CIS, new_ci(**fields), format="json")
    assert response.status_code == 400, response.content
    assert field_named(response, field), response.json()
    assert ConfigurationItem.objects.count() == before


@pytest.mark.parametrize("missing", ["name", "type", "owner_team"])
def test_creating_a_ci_without_a_required_field_is_a_400_naming_it(admin_api, team, missing):
    payload = new_ci()
    del payload[missing]
    response = admin_api.post(CIS, payload, format="json")
    assert response.status_code == 400
    assert field_named(response, missing)
    assert not ConfigurationItem.objects.exists()


@pytest.mark.parametrize("name", ["payments-api", "PAYMENTS-API", "Payments-Api"])
def test_a_ci_name_taken_in_any_case_is_a_400_naming_name(admin_api, estate, name):
    response = admin_api.post(CIS, new_ci(name=name), format="json")
    assert response.status_code == 400, response.content
    assert error_fields(response) == ["name"]
    assert "already exists" in response.json()["errors"][0]["message"]
    assert ConfigurationItem.objects.filter(name__iexact="payments-api").count() == 1


def test_renaming_a_ci_onto_another_ci_name_in_another_case_is_a_400_naming_name(admin_api, estate):
    ci = estate["search-api"]
    response = admin_api.patch(ci_url(ci), {"name": "Payments-DB"}, format="json")
    assert response.status_code == 400
    assert field_named(response, "name")
    ci.refresh_from_db()
    assert ci.name == "search-api"


def test_a_bad_update_leaves_the_ci_as_it_was(admin_api, estate):
    ci = estate["search-api"]
    response = admin_api.patch(ci_url(ci), {"criticality": 1, "tags": ["BAD TAG"]}, format="json")
    assert response.status_code == 400
    assert field_named(response, "tags")
    ci.refresh_from_db()
    assert (ci.criticality, ci.tags) == (3, ["edge"])


def test_every_bad_field_of_a_ci_is_reported_at_once(admin_api, team):
    response = admin_api.post(CIS, new_ci(name="bad name", criticality=7, type="mainframe"), format="json")
    assert response.status_code == 400
    assert {"name", "criticality", "type"} <= set(error_fields(response))


def test_a_relationship_from_a_ci_to_itself_is_a_400_not_a_500(admin_api, estate):
    response = admin_api.post(RELATIONSHIPS, {"source": "payments-api", "target": "payments-api",
                                              "type": "depends_on"}, format="json")
    assert response.status_code == 400, response.content
    assert error_fields(response)
    assert not Relationship.objects.exists()


def test_repointing_a_relationship_at_its_own_source_is_a_400(admin_api, estate):
    edge = link(estate["payments-api"], estate["payments-db"])
    response = admin_api.patch(f"{RELATIONSHIPS}{edge.pk}/", {"target": "payments-api"}, format="json")
    assert response.status_code == 400, response.content
    edge.refresh_from_db()
    assert edge.target == estate["payments-db"]


def test_a_duplicate_relationship_is_a_400_and_not_written_twice(admin_api, estate):
    link(estate["payments-api"], estate["payments-db"])
    response = admin_api.post(RELATIONSHIPS, {"source": "payments-api", "target": "payments-db",
                                              "type": "depends_on"}, format="json")
    assert response.status_code == 400, response.content
    assert error_fields(response)
    assert Relationship.objects.count() == 1


@pytest.mark.parametrize(("fields", "field"), [
    ({"source": "no-such-ci"}, "source"),
    ({"target": "no-such-ci"}, "target"),
    ({"type": "likes"}, "type"),
])
def test_a_relationship_with_an_unknown_end_or_type_is_a_400_naming_the_field(admin_api, estate, fields, field):
    payload = {"source": "payments-api", "target": "payments-db", "type": "depends_on", **fields}
    response = admin_api.post(RELATIONSHIPS, payload, format="json")
    assert response.status_code == 400
    assert field_named(response, field)
    assert not Relationship.objects.exists()


def test_a_body_that_is_not_json_is_a_400_in_the_error_shape(admin_api, team):
    response = admin_api.generic("POST", CIS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_fields(response)
    assert not ConfigurationItem.objects.exists()


# Permissions


def test_anonymous_gets_401_on_every_cmdb_endpoint(api, estate):
    ci = estate["payments-api"]
    for url in (CIS, ci_url(ci), f"{ci_url(ci)}impact/", TEAMS, ENVIRONMENTS, RELATIONSHIPS):
        response = api.get(url)
        assert response.status_code == 401, url
        assert error_fields(response) == [None]
    assert api.post(CIS, new_ci(), format="json").status_code == 401
    assert not ConfigurationItem.objects.filter(name="ledger").exists()


def test_a_made_up_token_is_a_401(api, estate):
    api.credentials(HTTP_AUTHORIZATION="Bearer cb_made-up")
    assert api.get(CIS).status_code == 401


def test_an_outsider_without_a_role_cannot_read_the_cmdb(api, outsider, estate):
    client = api.as_user(outsider)
    ci = estate["payments-api"]
    for url in (CIS, ci_url(ci), f"{ci_url(ci)}impact/", TEAMS, ENVIRONMENTS, RELATIONSHIPS):
        response = client.get(url)
        assert response.status_code == 403, url
        assert error_fields(response) == [None]


def test_an_outsider_cannot_write_to_the_cmdb(api, outsider, estate):
    client = api.as_user(outsider)
    ci = estate["payments-api"]
    assert client.post(CIS, new_ci(), format="json").status_code == 403
    assert client.patch(ci_url(ci), {"criticality": 4}, format="json").status_code == 403
    assert client.delete(ci_url(ci)).status_code == 403
    assert client.post(TEAMS, {"name": "X", "slug": "x"}, format="json").status_code == 403
    ci.refresh_from_db()
    assert ci.criticality == 1
    assert not ConfigurationItem.objects.filter(name="ledger").exists()
    assert not Team.objects.filter(slug="x").exists()


@pytest.mark.parametrize("persona", ["requester", "cab_member", "release_manager", "auditor", "pipeline"])
def test_every_role_may_read_the_cmdb(api, request, estate, persona):
    client = api.as_user(request.getfixturevalue(persona))
    assert names(client.get(CIS)) == ["payments-api", "payments-db", "search-api", "search-index"]


def test_requester_cannot_create_a_ci(api, requester, team):
    response = api.as_user(requester).post(CIS, new_ci(), format="json")
    assert response.status_code == 403
    assert error_fields(response)
    assert not ConfigurationItem.objects.exists()


def test_requester_cannot_update_a_ci(api, requester, estate):
    ci = estate["payments-api"]
    client = api.as_user(requester)
    assert client.patch(ci_url(ci), {"criticality": 4}, format="json").status_code == 403
    assert client.put(ci_url(ci), new_ci(name="payments-api", criticality=4), format="json").status_code == 403
    ci.refresh_from_db()
    assert ci.criticality == 1


def test_requester_cannot_delete_a_ci(api, requester, estate):
    ci = estate["payments-api"]
    assert api.as_user(requester).delete(ci_url(ci)).status_code == 403
    assert ConfigurationItem.objects.filter(pk=ci.pk).exists()


def test_requester_cannot_write_teams_environments_or_relationships(api, requester, estate, team):
    client = api.as_user(requester)
    assert client.post(TEAMS, {"name": "X", "slug": "x"}, format="json").status_code == 403
    assert client.patch(f"{TEAMS}{team.pk}/", {"name": "Renamed"}, format="json").status_code == 403
    assert client.post(ENVIRONMENTS, {"name": "qa", "position": 7}, format="json").status_code == 403
    assert client.post(RELATIONSHIPS, {"source": "payments-api", "target": "payments-db", "type": "depends_on"},
                       format="json").status_code == 403
    edge = link(estate["search-api"], estate["search-index"])
    assert client.delete(f"{RELATIONSHIPS}{edge.pk}/").status_code == 403
    assert not Team.objects.filter(slug="x").exists()
    assert Team.objects.get(pk=team.pk).name == "Payments"
    assert not Environment.objects.filter(name="qa").exists()
    assert list(Relationship.objects.all()) == [edge]


def test_team_maintainer_creates_updates_and_deletes_their_teams_cis(api, maintainer, team):
    client = api.as_user(maintainer)
    assert client.post(CIS, new_ci(criticality=3), format="json").status_code == 201
    ci = ConfigurationItem.objects.get(name="ledger")
    assert client.patch(ci_url(ci), {"description": "posts to the ledger"}, format="json").status_code == 200
    ci.refresh_from_db()
    assert ci.description == "posts to the ledger"
    assert client.delete(ci_url(ci)).status_code == 204
    assert not ConfigurationItem.objects.exists()


def test_team_maintainer_cannot_create_a_ci_for_another_team(api, maintainer, search_team):
    response = api.as_user(maintainer).post(CIS, new_ci(owner_team="search"), format="json")
    assert response.status_code == 403
    assert error_fields(response) == ["owner_team"]
    assert not ConfigurationItem.objects.exists()


def test_team_maintainer_cannot_change_or_delete_another_teams_ci(api, maintainer, estate):
    client = api.as_user(maintainer)
    ci = estate["search-api"]
    assert client.patch(ci_url(ci), {"criticality": 1}, format="json").status_code == 403
    assert client.delete(ci_url(ci)).status_code == 403
    ci.refresh_from_db()
    assert ci.criticality == 3


def test_team_maintainer_cannot_move_their_ci_to_another_team(api, maintainer, estate, team):
    ci = estate["payments-api"]
    response = api.as_user(maintainer).patch(ci_url(ci), {"owner_team": "search"}, format="json")
    assert response.status_code == 403
    assert error_fields(response) == ["owner_team"]
    ci.refresh_from_db()
    assert ci.owner_team == team


def test_team_maintainer_cannot_take_another_teams_ci_into_their_team(api, maintainer, estate, search_team):
    ci = estate["search-api"]
    response = api.as_user(maintainer).patch(ci_url(ci), {"owner_team": "payments"}, format="json")
    assert response.status_code == 403
    ci.refresh_from_db()
    assert ci.owner_team == search_team


def test_team_maintainer_cannot_write_teams_or_environments(api, maintainer, team):
    client = api.as_user(maintainer)
    assert client.patch(f"{TEAMS}{team.pk}/", {"name": "Mine now"}, format="json").status_code == 403
    assert client.post(ENVIRONMENTS, {"name": "qa", "position": 7}, format="json").status_code == 403


def test_team_maintainer_adds_and_removes_relationships_from_their_cis_only(api, maintainer, estate):
    client = api.as_user(maintainer)
    response = client.post(RELATIONSHIPS, {"source": "payments-api", "target": "search-api",
                                           "type": "connects_to"}, format="json")
    assert response.status_code == 201, response.content
    response = client.post(RELATIONSHIPS, {"source": "search-api", "target": "payments-api",
                                           "type": "connects_to"}, format="json")
    assert response.status_code == 403
    assert error_fields(response) == ["source"]
    theirs = link(estate["search-api"], estate["search-index"])
    assert client.delete(f"{RELATIONSHIPS}{theirs.pk}/").status_code == 403
    ours = Relationship.objects.get(source=estate["payments-api"])
    assert client.delete(f"{RELATIONSHIPS}{ours.pk}/").status_code == 204
    assert list(Relationship.objects.all()) == [theirs]


def test_team_maintainer_cannot_repoint_their_relationship_onto_another_teams_ci_as_source(api, maintainer, estate):
    edge = link(estate["payments-api"], estate["payments-db"])
    response = api.as_user(maintainer).patch(f"{RELATIONSHIPS}{edge.pk}/", {"source": "search-api"}, format="json")
    assert response.status_code == 403
    assert error_fields(response) == ["source"]
    edge.refresh_from_db()
    assert edge.source == estate["payments-api"]


def test_team_maintainer_may_repoint_their_relationship_to_another_target(api, maintainer, estate):
    edge = link(estate["payments-api"], estate["payments-db"])
    response = api.as_user(maintainer).patch(f"{RELATIONSHIPS}{edge.pk}/", {"target": "search-api"}, format="json")
    assert response.status_code == 200, response.content
    edge.refresh_from_db()
    assert edge.target == estate["search-api"]


def test_a_team_permission_is_personal_and_not_shared_with_other_requesters(api, maintainer, team):
    bystander = make_user("bystander", Role.REQUESTER)
    assert api.as_user(bystander).post(CIS, new_ci(), format="json").status_code == 403


def test_admin_may_move_a_ci_to_another_team(admin_api, estate, search_team):
    ci = estate["payments-api"]
    assert admin_api.patch(ci_url(ci), {"owner_team": "search"}, format="json").status_code == 200
    ci.refresh_from_db()
    assert ci.owner_team == search_team


# Impact


@pytest.fixture
def chain(team):
    """db <- api <- web <- mobile, and api depends on cache."""
    cis = {n: make_ci(n, team=team, criticality=2) for n in ["db", "api", "web", "mobile", "cache"]}
    link(cis["api"], cis["db"])
    link(cis["web"], cis["api"])
    link(cis["mobile"], cis["web"])
    link(cis["api"], cis["cache"])
    return cis


def test_impact_lists_dependents_with_depth_and_path_of_names(reader_api, chain):
    body = reader_api.get(f"{ci_url(chain['db'])}impact/").json()
    assert body["ci"] == {"id": chain["db"].pk, "name": "db", "type": "service", "criticality": 2,
                          "owner_team": "payments"}
    assert body["dependents_count"] == 3
    assert [(d["ci"]["name"], d["depth"], d["path"]) for d in body["dependents"]] == [
        ("api", 1, ["db", "api"]),
        ("web", 2, ["db", "api", "web"]),
        ("mobile", 3, ["db", "api", "web", "mobile"]),
    ]
    assert body["dependencies"] == []


def test_impact_lists_dependencies_the_other_way(reader_api, chain):
    body = reader_api.get(f"{ci_url(chain['web'])}impact/").json()
    assert [(d["ci"]["name"], d["depth"], d["path"]) for d in body["dependents"]] == [("mobile", 1, ["web", "mobile"])]
    assert sorted((d["ci"]["name"], d["depth"], tuple(d["path"])) for d in body["dependencies"]) == [
        ("api", 1, ("web", "api")),
        ("cache", 2, ("web", "api", "cache")),
        ("db", 2, ("web", "api", "db")),
    ]


def test_impact_limit_caps_the_lists_but_not_the_count(reader_api, chain):
    body = reader_api.get(f"{ci_url(chain['db'])}impact/?limit=1").json()
    assert body["dependents_count"] == 3
    assert [d["ci"]["name"] for d in body["dependents"]] == ["api"]
    body = reader_api.get(f"{ci_url(chain['web'])}impact/?limit=0").json()
    assert body["dependents"] == [] and body["dependencies"] == []
    assert body["dependents_count"] == 1


@pytest.mark.parametrize("limit", ["many", "-1", "1.5", ""])
def test_a_bad_impact_limit_is_a_400_naming_limit(reader_api, chain, limit):
    response = reader_api.get(f"{ci_url(chain['db'])}impact/?limit={limit}")
    assert response.status_code == 400
    assert error_fields(response) == ["limit"]


def test_impact_of_an_unknown_ci_is_a_404(reader_api, chain):
    assert reader_api.get(f"{CIS}999999/impact/").status_code == 404


# Query budgets: a list costs the same number of queries whatever its length


def _grow(kind: str, start: int, count: int, team) -> None:
    for i in range(start, start + count):
        if kind == "cis":
            env = make_environment(f"env-{i}", i, owner_team=team)
            make_ci(f"ci-{i}", team=team if i % 2 else make_team(), environment=env, tags=["t"])
        elif kind == "teams":
            make_team()
        elif kind == "environments":
            make_environment(f"env-{i}", i, owner_team=make_team())
        else:
            link(make_ci(f"src-{i}"), make_ci(f"dst-{i}"))


def _queries(client, url) -> int:
    client.get(url)  # the first request of a token also records its use; measure a steady one
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(("kind", "url"), [
    ("cis", CIS), ("cis", f"{CIS}?owner_team=payments&tag=t&q=ci"), ("teams", TEAMS),
    ("environments", ENVIRONMENTS), ("relationships", RELATIONSHIPS),
    ("relationships", f"{RELATIONSHIPS}?rel_type=depends_on"),
])
def test_every_list_endpoint_keeps_a_fixed_query_budget_as_rows_grow(
        reader_api, team, django_assert_max_num_queries, kind, url):
    _grow(kind, 1, 3, team)
    budget = _queries(reader_api, url)
    _grow(kind, 4, 30, team)
    with django_assert_max_num_queries(budget):
        response = reader_api.get(url)
    assert response.status_code == 200
    if "?" not in url:
        assert response.json()["count"] >= 33


def test_impact_keeps_a_fixed_query_budget_as_the_radius_grows(reader_api, team, django_assert_max_num_queries):
    root = make_ci("root", team=team)
    for i in range(3):
        link(make_ci(f"near-{i}", team=make_team()), root)
    url = f"{ci_url(root)}impact/"
    budget = _queries(reader_api, url)
    previous = root
    for i in range(30):
        current = make_ci(f"far-{i}", team=make_team())
        link(current, previous)
        previous = current
    with django_assert_max_num_queries(budget):
        response = reader_api.get(url)
    assert response.json()["dependents_count"] == 33


# Schema and docs


def test_the_openapi_schema_describes_the_cmdb_endpoints(api):
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Changeboard API"
    for path in ("/api/v1/cis/", "/api/v1/cis/{id}/impact/", "/api/v1/relationships/", "/api/v1/cmdb/import/",
                 "/api/v1/teams/", "/api/v1/environments/"):
        assert path in schema["paths"], path
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_the_api_docs_load_swagger_ui_from_the_apps_own_static_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assets = [s for s in sources if s.endswith((".js", ".css", ".png"))]
    assert any(s.startswith("/static/") and "swagger-ui" in s for s in assets), sources
    assert not [s for s in sources if s.startswith(("http://", "https://", "//"))], sources
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
