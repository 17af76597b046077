"""A CI's health URL, which the dependency circuit breaker asks before each wave of a service depending on it: set
through the API and the admin, shown on the CI page, and only ever an http:// or https:// URL."""

import pytest
from django.urls import reverse

from tests.factories import make_ci, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def database(db):
    return make_ci("payments-db", ci_type="database", team=make_team("payments"))


def test_an_admin_sets_a_health_url_through_the_api_and_the_ci_page_shows_it(api, admin_user, client, database):
    response = api.as_user(admin_user).patch(f"/api/v1/cis/{database.pk}/",
                                             {"health_url": "https://db-proxy.internal:8443/healthz"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["health_url"] == "https://db-proxy.internal:8443/healthz"
    database.refresh_from_db()
    assert database.health_url == "https://db-proxy.internal:8443/healthz"
    client.force_login(admin_user)
    page = client.get(reverse("cmdb:ci_detail", args=[database.pk]))
    assert "https://db-proxy.internal:8443/healthz" in page.content.decode()


@pytest.mark.parametrize("url", ["ftp://db-proxy/healthz", "file:///etc/passwd", "db-proxy/healthz",
                                 "javascript:alert(1)", "http://"])
def test_a_health_url_that_is_not_http_is_refused_naming_the_field(api, admin_user, database, url):
    response = api.as_user(admin_user).patch(f"/api/v1/cis/{database.pk}/", {"health_url": url}, format="json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["health_url"]
    database.refresh_from_db()
    assert database.health_url == ""


def test_the_admin_form_refuses_a_health_url_that_is_not_http(admin_client, admin_user, database):
    page = admin_client.get(reverse("admin:cmdb_configurationitem_change", args=[database.pk]))
    assert 'name="health_url"' in page.content.decode()
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields if form.initial.get(name) is not None}
    bound = type(form)(data={**data, "health_url": "ftp://db-proxy/healthz"}, instance=database)
    bound.actor = admin_user
    assert not bound.is_valid() and "health_url" in bound.errors
