"""The CMDB pages and the login/logout pages, through Django's test client."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import link, make_ci, make_environment, make_team

pytestmark = pytest.mark.django_db

LIST = "/cmdb/"


def detail_url(ci) -> str:
    return f"/cmdb/cis/{ci.pk}/"


def listed(response) -> list[str]:
    """The CI names in the list page's results table, in page order."""
    assert response.status_code == 200
    results = response.content.decode().split('id="ci-results"', 1)[1]
    return re.findall(r'<td><a href="/cmdb/cis/\d+/">([^<]+)</a></td>', results)


def impact_rows(response, heading: str) -> list[tuple[str, int, str]]:
    """(name, depth, path) of each row of the Dependents or Dependencies table of a detail page."""
    html = response.content.decode()
    section = html.split(f'id="{heading.lower()}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><td><a href="[^"]+">([^<]+)</a></td>.*?<td>(\d+)</td><td class="path">([^<]*)</td></tr>',
                      section)
    return [(name, int(depth), path) for name, depth, path in rows]


@pytest.fixture
def reader(client, cab_member):
    client.force_login(cab_member)
    return client


@pytest.fixture
def estate(team):
    search = make_team("search", name="Search")
    prod = make_environment("prod", 2)
    return {ci.name: ci for ci in [
        make_ci("payments-api", team=team, criticality=1, environment=prod, tags=["pci"],
                description="Takes card payments"),
        make_ci("payments-db", team=team, ci_type="database", criticality=1, environment=prod),
        make_ci("search-api", team=search, criticality=3),
        make_ci("search-index", team=search, ci_type="storage", criticality=4),
    ]}


@pytest.fixture
def chain(team):
    """db <- api <- web <- mobile; api also depends on cache."""
    cis = {n: make_ci(n, team=team) for n in ["db", "api", "web", "mobile", "cache"]}
    link(cis["api"], cis["db"])
    link(cis["web"], cis["api"])
    link(cis["mobile"], cis["web"])
    link(cis["api"], cis["cache"], "connects_to")
    return cis


# Who may see the pages


def test_anonymous_visitor_is_sent_to_the_login_page(client, estate):
    response = client.get(LIST)
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/cmdb/"
    response = client.get(detail_url(estate["payments-api"]))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_home_page_leads_a_reader_without_other_work_to_the_cmdb(client, admin_user):
    client.force_login(admin_user)  # each role's own landing: tests/governance/test_landing.py
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == LIST


def test_an_outsider_without_a_role_gets_403_on_the_cmdb_pages(client, outsider, estate):
    client.force_login(outsider)
    list_response = client.get(LIST)
    assert list_response.status_code == 403
    assert b"payments-api" not in list_response.content
    detail_response = client.get(detail_url(estate["payments-api"]))
    assert detail_response.status_code == 403
    assert b"Takes card payments" not in detail_response.content


def test_a_cab_member_sees_every_ci_in_the_list(reader, estate):
    response = reader.get(LIST)
    assert listed(response) == ["payments-api", "payments-db", "search-api", "search-index"]
    html = response.content.decode()
    assert "4 configuration items" in html
    assert "Payments" in html and "prod" in html


@pytest.mark.parametrize("persona", ["requester", "release_manager", "auditor", "admin_user"])
def test_every_role_may_read_the_cmdb_pages(client, request, estate, persona):
    client.force_login(request.getfixturevalue(persona))
    assert len(listed(client.get(LIST))) == 4
    assert client.get(detail_url(estate["search-api"])).status_code == 200


# Filters


@pytest.mark.parametrize(("query", "expected"), [
    ("q=search", ["search-api", "search-index"]),
    ("q=card", ["payments-api"]),
    ("q=pci", ["payments-api"]),
    ("q=nothing-like-this", []),
    ("ci_type=database", ["payments-db"]),
    ("ci_type=database&ci_type=storage", ["payments-db", "search-index"]),
    ("owner_team=search", ["search-api", "search-index"]),
    ("owner_team=payments&ci_type=service", ["payments-api"]),
    ("criticality=1", ["payments-api", "payments-db"]),
    ("environment=prod", ["payments-api", "payments-db"]),
])
def test_filters_narrow_the_list(reader, estate, query, expected):
    assert listed(reader.get(f"{LIST}?{query}")) == expected


def test_an_empty_result_says_so(reader, estate):
    response = reader.get(f"{LIST}?q=nothing-like-this")
    assert "No configuration item matches these filters." in response.content.decode()


def test_the_filter_form_keeps_the_chosen_values(reader, estate):
    html = reader.get(f"{LIST}?q=api&ci_type=database").content.decode()
    assert 'value="api"' in html
    assert re.search(r'<option value="database"\s+selected>', html)


def test_the_list_is_paginated_and_the_next_link_keeps_the_filters(reader, team):
    for i in range(55):
        make_ci(f"svc-{i:02d}", team=team)
    first = reader.get(f"{LIST}?owner_team=payments")
    assert len(listed(first)) == 50
    html = first.content.decode()
    assert "Page 1 of 2" in html
    assert "?owner_team=payments&amp;page=2" in html
    second = reader.get(f"{LIST}?owner_team=payments&page=2")
    assert listed(second) == [f"svc-{i}" for i in range(50, 55)]


# Query budgets


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("query", ["", "?q=svc&owner_team=payments&ci_type=service"])
def test_the_list_page_keeps_a_fixed_query_count_as_rows_grow(reader, team, django_assert_max_num_queries, query):
    def grow(start, count):
        for i in range(start, start + count):
            env = make_environment(f"env-{i}", i)
            make_ci(f"svc-{i}", team=team if i % 2 else make_team(), environment=env, tags=["t"])

    grow(0, 3)
    budget = _queries(reader, f"{LIST}{query}")
    grow(3, 30)
    with django_assert_max_num_queries(budget):
        response = reader.get(f"{LIST}{query}")
    assert len(listed(response)) >= 16


def test_the_detail_page_keeps_a_fixed_query_count_as_the_graph_grows(reader, team, django_assert_max_num_queries):
    root = make_ci("root", team=team)

    def grow(start, count):
        for i in range(start, start + count):
            dependent = make_ci(f"dependent-{i}", team=make_team())
            link(dependent, root)
            link(make_ci(f"far-{i}", team=make_team()), dependent)
            link(root, make_ci(f"dependency-{i}", team=make_team()), "runs_on")

    grow(0, 3)
    budget = _queries(reader, detail_url(root))
    grow(3, 30)
    with django_assert_max_num_queries(budget):
        response = reader.get(detail_url(root))
    assert len(impact_rows(response, "Dependents")) == 66


# The detail page


def test_the_detail_page_shows_the_ci_and_its_relationships(reader, chain):
    response = reader.get(detail_url(chain["api"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>api" in html
    assert f'depends on <a href="{detail_url(chain["db"])}">db</a>' in html
    assert f'connects to <a href="{detail_url(chain["cache"])}">cache</a>' in html
    assert f'<a href="{detail_url(chain["web"])}">web</a> depends on this' in html


def test_the_detail_page_draws_the_blast_radius_with_the_dependents_names(reader, chain):
    html = reader.get(detail_url(chain["db"])).content.decode()
    svg = html[html.index("<svg"):html.index("</svg>")]
    for name in ("db", "api", "web", "mobile"):
        assert f"<title>{name} (" in svg
    assert "cache" not in svg  # not part of db's impact
    assert "<strong>3</strong> CIs depend on db" in html


def test_the_detail_page_lists_dependents_with_depth_and_shortest_path(reader, chain):
    response = reader.get(detail_url(chain["db"]))
    assert impact_rows(response, "Dependents") == [
        ("api", 1, "db ← api"),
        ("web", 2, "db ← api ← web"),
        ("mobile", 3, "db ← api ← web ← mobile"),
    ]
    assert impact_rows(response, "Dependencies") == []
    assert "db depends on nothing recorded." in response.content.decode()


def test_the_detail_page_lists_dependencies_the_other_way(reader, chain):
    response = reader.get(detail_url(chain["web"]))
    assert impact_rows(response, "Dependents") == [("mobile", 1, "web ← mobile")]
    assert sorted(impact_rows(response, "Dependencies")) == [
        ("api", 1, "web → api"), ("cache", 2, "web → api → cache"), ("db", 2, "web → api → db")]


def test_a_ci_without_relationships_says_so(reader, estate):
    html = reader.get(detail_url(estate["search-index"])).content.decode()
    assert "No relationships recorded." in html
    assert "Nothing depends on search-index." in html
    assert "<svg" in html


def test_an_unknown_ci_is_a_404(reader, estate):
    assert reader.get("/cmdb/cis/999999/").status_code == 404


# Login and logout


def test_the_login_page_renders_a_form(client):
    response = client.get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form method="post">' in html
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_a_good_login_lands_on_the_cmdb_or_the_page_asked_for(client, cab_member, estate):
    response = client.post("/login/", {"username": "cab_member", "password": "pw-for-tests", "next": LIST})
    assert response.status_code == 302
    assert response["Location"] == LIST
    assert len(listed(client.get(LIST))) == 4
    client.logout()
    target = detail_url(estate["search-api"])
    response = client.post("/login/", {"username": "cab_member", "password": "pw-for-tests", "next": target})
    assert response["Location"] == target


def test_a_bad_password_shows_the_form_again_and_does_not_log_in(client, cab_member):
    response = client.post("/login/", {"username": "cab_member", "password": "wrong"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert client.get(LIST).status_code == 302


def test_logout_is_a_post_and_ends_the_session(reader):
    assert reader.get("/logout/").status_code == 405
    assert reader.get(LIST).status_code == 200  # a GET did not log out
    response = reader.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert reader.get(LIST).status_code == 302


def test_the_pages_carry_a_logout_form_not_a_link(reader, estate):
    html = reader.get(LIST).content.decode()
    assert re.search(r'<form[^>]*method="post"[^>]*action="/logout/"', html)
    assert 'href="/logout/"' not in html
