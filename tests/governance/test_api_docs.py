"""The API's docs and schema as people meet them: operations grouped by area, a schema a browser shows rather than
saves (while clients get the media types they ask for), docs pages that name no other host, and a site icon."""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

METHODS = {"get", "put", "patch", "post", "delete"}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema) -> list[tuple[str, str, dict]]:
    return [
        (path, method, op) for path, item in schema["paths"].items() for method, op in item.items() if method in METHODS
    ]


def test_every_operation_sits_in_one_area_and_none_in_v1(schema):
    areas = [tag["name"] for tag in schema["tags"]]
    assert areas == list(settings.API_AREAS) == [
        "CMDB", "Changes", "Calendar", "Releases", "Gate", "Audit", "Deployments", "ITSM"]
    for path, method, op in operations(schema):
        assert op["tags"] != ["v1"], (method, path)
        assert len(op["tags"]) == 1 and op["tags"][0] in areas, (method, path, op["tags"])


def test_each_area_holds_the_operations_of_its_paths(schema):
    tagged = {}
    for path, _, op in operations(schema):
        tagged.setdefault(op["tags"][0], set()).add(path.split("/")[3])
    assert tagged == {
        "CMDB": {"teams", "environments", "cis", "relationships", "cmdb"},
        "Changes": {"changes", "policies", "standard-templates"},
        "Calendar": {"freezes", "maintenance-windows", "lockdowns", "calendar-feeds"},
        "Releases": {"artifacts", "trusted-keys"},
        "Gate": {"deployment-checks", "gates", "deployments"},
        "Audit": {"audit"},
        "Deployments": {"rollouts", "deployment-plans"},
        "ITSM": {"incidents"},
    }
    assert all(tag["description"] for tag in schema["tags"])


def test_a_browser_is_shown_the_yaml_schema_as_text_inline(client):
    response = client.get("/api/schema/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("inline")
    assert yaml.safe_load(response.content)["info"]["title"] == "Changeboard API"


def test_a_browser_asking_for_json_is_shown_json(client):
    response = client.get("/api/schema/?format=json", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("inline")
    assert json.loads(response.content)["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("accept", "query", "media_type"),
    [
        ("*/*", "", "application/vnd.oai.openapi; charset=utf-8"),  # curl, and most tools
        ("application/vnd.oai.openapi", "", "application/vnd.oai.openapi; charset=utf-8"),
        ("application/yaml", "", "application/yaml; charset=utf-8"),
        ("application/vnd.oai.openapi+json", "", "application/vnd.oai.openapi+json"),
        ("application/json", "", "application/json"),
        ("*/*", "?format=json", "application/vnd.oai.openapi+json"),  # what the fuzzer and generated clients read
    ],
)
def test_clients_get_the_media_type_they_ask_for(client, accept, query, media_type):
    response = client.get(f"/api/schema/{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == media_type


@pytest.mark.parametrize("url", ["/api/redoc/", "/api/docs/"])
def test_the_docs_pages_name_no_other_host(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html
    assert re.findall(r'(?:src|href)="(?:https?:)?//[^"]*"', html) == []


def test_redoc_is_given_the_systems_fonts(client):
    html = client.get("/api/redoc/").content.decode()
    settings_json = re.search(r"const redocSettings = (\{.*?\});", html, re.S).group(1)
    typography = json.loads(settings_json)["theme"]["typography"]
    for family in (typography["fontFamily"], typography["headings"]["fontFamily"], typography["code"]["fontFamily"]):
        assert "Montserrat" not in family and family.endswith(("sans-serif", "monospace"))


# --- the site's icon ----------------------------------------------------------------------------------------------


def test_favicon_ico_leads_to_the_sites_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/changeboard/favicon.svg"
    assert "max-age=86400" in response["Cache-Control"]
    icon = finders.find("changeboard/favicon.svg")
    assert icon and Path(icon).read_text().startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_pages_and_the_redoc_page_link_the_icon(client, auditor):
    link = '<link rel="icon" href="/static/changeboard/favicon.svg" type="image/svg+xml">'
    assert link in client.get("/login/").content.decode()
    client.force_login(auditor)
    assert link in client.get("/audit/").content.decode()
    assert link in client.get("/api/redoc/").content.decode()
