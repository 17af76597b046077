"""A CI's GitHub repository and the GitHub environments that deploy it: what GitHub's deployment protection rules
are matched on. Set through the API, an import and the admin, and checked as GitHub names them."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from cmdb.models import ConfigurationItem
from cmdb.services import inventory_import, inventory_parse
from governance.roles import Role
from tests.factories import make_ci, make_environment, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(db):
    for position, name in enumerate(["staging", "prod"]):
        make_environment(name, position)
    return make_ci("payments-api", team=make_team("payments"))


def ci_url(ci) -> str:
    return f"/api/v1/cis/{ci.pk}/"


def test_an_admin_maps_a_repositorys_github_environments_to_changeboard_environments(api, admin_user, service):
    response = api.as_user(admin_user).patch(
        ci_url(service),
        {"github_repository": "octo-bank/payments", "github_environments": {"payments-api-prod": "PROD"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    # Spelled as Changeboard spells the environment, whatever the case it was given in.
    assert response.json()["github_environments"] == {"payments-api-prod": "prod"}
    service.refresh_from_db()
    assert (service.github_repository, service.github_environment_target("Payments-API-Prod")) == (
        "octo-bank/payments",
        "prod",
    )
    assert service.github_environment_target("prod") is None


@pytest.mark.parametrize(
    "repository",
    ["git.bank.example/payments/payments-api", "https://github.com/octo-bank/payments", "payments", "-x/y", "a/.."],
)
def test_a_repository_github_would_not_name_is_refused(api, admin_user, service, repository):
    response = api.as_user(admin_user).patch(ci_url(service), {"github_repository": repository}, format="json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["github_repository"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"payments-api-prod": "moon"}, "no Changeboard environment"),
        ({"payments-api-prod": "prod", "PAYMENTS-API-PROD": "staging"}, "given twice"),
        ({"payments-api-prod": ["prod"]}, "no Changeboard environment"),
        ({"": "prod"}, "no GitHub environment name"),
        ({"x" * 256: "prod"}, "no GitHub environment name"),
        (["payments-api-prod"], "Give a JSON object"),
    ],
)
def test_a_github_environment_mapping_that_cannot_be_followed_is_refused(api, admin_user, service, mapping, message):
    body = {"github_repository": "octo-bank/payments", "github_environments": mapping}
    response = api.as_user(admin_user).patch(ci_url(service), body, format="json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "github_environments" and message in error["message"]
    service.refresh_from_db()
    assert service.github_environments == {}


def test_github_environments_need_the_repository_they_are_of(api, admin_user, service):
    response = api.as_user(admin_user).patch(
        ci_url(service), {"github_environments": {"payments-api-prod": "prod"}}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "github_environments"


def test_a_teams_maintainer_sets_the_github_fields_of_the_teams_ci_and_others_may_not(api, service):
    maintainer = make_user("maya", Role.REQUESTER)
    assign_perm("cmdb.manage_team_cis", maintainer, service.owner_team)
    body = {"github_repository": "octo-bank/payments", "github_environments": {"payments-api-prod": "prod"}}
    assert api.as_user(maintainer).patch(ci_url(service), body, format="json").status_code == 200
    stranger = make_user("sam", Role.REQUESTER)
    assert (
        api.as_user(stranger).patch(ci_url(service), {"github_repository": "evil/x"}, format="json").status_code == 403
    )
    service.refresh_from_db()
    assert service.github_repository == "octo-bank/payments"


def test_an_import_sets_the_github_fields_from_csv(admin_user, service):
    csv = (
        "name,type,owner_team,github_repository,github_environments\n"
        'payments-batch,service,payments,octo-bank/payments,"{""payments-batch-prod"": ""prod""}"\n'
    )
    inventory_import(actor=admin_user, records=inventory_parse("cis.csv", csv))
    batch = ConfigurationItem.objects.get(name="payments-batch")
    assert (batch.github_repository, batch.github_environments) == (
        "octo-bank/payments",
        {"payments-batch-prod": "prod"},
    )


def test_the_admin_edits_the_github_fields_and_the_ci_page_shows_them(client, admin_user, service):
    client.force_login(admin_user)
    url = reverse("admin:cmdb_configurationitem_change", args=[service.pk])
    page = client.get(url).content.decode()
    assert 'name="github_repository"' in page and 'name="github_environments"' in page
    form = {
        "name": "payments-api", "ci_type": "service", "criticality": 3, "owner_team": service.owner_team.pk,
        "lifecycle_status": "in_service", "attributes": "{}", "tags": "",
        "github_repository": "octo-bank/payments", "github_environments": '{"payments-api-prod": "moon"}',
        "outgoing-TOTAL_FORMS": 0, "outgoing-INITIAL_FORMS": 0,
    }  # fmt: skip
    refused = client.post(url, form)
    assert refused.status_code == 200 and "no Changeboard environment" in refused.content.decode()
    assert client.post(url, {**form, "github_environments": '{"payments-api-prod": "prod"}'}).status_code == 302
    service.refresh_from_db()
    assert service.github_environments == {"payments-api-prod": "prod"}
    detail = client.get(reverse("cmdb:ci_detail", args=[service.pk])).content.decode()
    assert "octo-bank/payments" in detail and "payments-api-prod" in detail
