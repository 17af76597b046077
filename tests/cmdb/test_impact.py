import pytest

from cmdb.selectors import ci_impact, impact_walk
from tests.factories import link, make_ci, make_team

pytestmark = pytest.mark.django_db


def names(entries, by_id):
    return {by_id[e.ci_id].name: (e.depth, [by_id[i].name for i in e.path]) for e in entries}


@pytest.fixture
def estate():
    """db <- api <- web <- mobile, plus a diamond: api <- {bff, gateway} <- edge, and a batch job on db."""
    team = make_team()
    cis = {n: make_ci(n, team=team) for n in ["db", "api", "web", "mobile", "bff", "gateway", "edge", "batch"]}
    for source, target in [("api", "db"), ("web", "api"), ("mobile", "web"), ("bff", "api"), ("gateway", "api"),
                           ("edge", "bff"), ("edge", "gateway"), ("batch", "db")]:
        link(cis[source], cis[target])
    return cis


def by_id(cis):
    return {c.pk: c for c in cis.values()}


def test_blast_radius_lists_every_transitive_dependent_with_its_depth_and_a_shortest_path(estate):
    radius = names(impact_walk(estate["db"].pk, direction="dependents"), by_id(estate))
    assert radius == {
        "api": (1, ["db", "api"]),
        "batch": (1, ["db", "batch"]),
        "web": (2, ["db", "api", "web"]),
        "bff": (2, ["db", "api", "bff"]),
        "gateway": (2, ["db", "api", "gateway"]),
        "mobile": (3, ["db", "api", "web", "mobile"]),
        "edge": (3, ["db", "api", "bff", "edge"]),  # the diamond's apex appears once, by one shortest path
    }


def test_dependencies_walk_the_other_way(estate):
    deps = names(impact_walk(estate["edge"].pk, direction="dependencies"), by_id(estate))
    assert deps == {
        "bff": (1, ["edge", "bff"]),
        "gateway": (1, ["edge", "gateway"]),
        "api": (2, ["edge", "bff", "api"]),
        "db": (3, ["edge", "bff", "api", "db"]),
    }


def test_a_leaf_has_an_empty_blast_radius(estate):
    assert impact_walk(estate["mobile"].pk, direction="dependents") == []


def test_cycles_terminate_and_every_ci_is_reported_once():
    team = make_team()
    a, b, c, d = (make_ci(n, team=team) for n in "abcd")
    link(b, a)
    link(c, b)
    link(a, c)  # a <- b <- c <- a: a cycle through the root
    link(d, c)
    link(c, d)  # and a two-node cycle further out
    entries = impact_walk(a.pk, direction="dependents")
    ids = [e.ci_id for e in entries]
    assert sorted(ids) == sorted([b.pk, c.pk, d.pk])
    assert {e.ci_id: e.depth for e in entries} == {b.pk: 1, c.pk: 2, d.pk: 3}


def test_the_shortest_path_wins_over_a_longer_one():
    team = make_team()
    root, near, far1, far2, target = (make_ci(n, team=team) for n in ["root", "near", "far1", "far2", "target"])
    link(far1, root)
    link(far2, far1)
    link(target, far2)  # target reaches root in 3 hops this way...
    link(near, root)
    link(target, near)  # ...and in 2 hops this way
    entry = next(e for e in impact_walk(root.pk, direction="dependents") if e.ci_id == target.pk)
    assert entry.depth == 2
    assert entry.path == [root.pk, near.pk, target.pk]


def test_part_of_makes_the_whole_depend_on_its_part():
    team = make_team()
    host, cluster, service, app = (make_ci(n, team=team) for n in ["host", "cluster", "service", "app"])
    link(host, cluster, "part_of")  # host is part of the cluster: the cluster relies on the host
    link(service, cluster, "runs_on")
    link(service, app, "part_of")
    radius = names(impact_walk(host.pk, direction="dependents"),
                   {c.pk: c for c in (host, cluster, service, app)})
    assert radius == {
        "cluster": (1, ["host", "cluster"]),
        "service": (2, ["host", "cluster", "service"]),
        "app": (3, ["host", "cluster", "service", "app"]),
    }
    assert impact_walk(app.pk, direction="dependents") == []


def test_max_depth_stops_the_walk(estate):
    entries = impact_walk(estate["db"].pk, direction="dependents", max_depth=1)
    assert {e.depth for e in entries} == {1}


def test_ci_impact_loads_everything_in_a_fixed_number_of_queries(estate, django_assert_num_queries):
    with django_assert_num_queries(3):
        impact = ci_impact(estate["db"])
        labelled = impact.labelled(impact.dependents)
    assert [item.name for _, item, _ in labelled][:2] == ["api", "batch"]
    assert len(labelled) == 7
