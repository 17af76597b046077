"""The population of a period's production deployments, matched to their changes, and its reconciliation."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from governance.core.errors import InvalidInput
from governance.evidence.period import period_from
from governance.evidence.population import COLUMNS, PopulationRow, population, row_dict
from governance.evidence.reconciliation import reconcile
from releases.models import Deployment, DeploymentKind
from tests.governance.evidence.population_world import World, build_world


@pytest.fixture
def world(db) -> World:
    return build_world()


def test_a_period_is_read_from_dates_with_the_end_date_counted_whole():
    period = period_from("2026-01-01", "2026-03-31", "sox")
    assert (period.start, period.end, period.scope) == (datetime(2026, 1, 1, tzinfo=UTC),
                                                         datetime(2026, 4, 1, tzinfo=UTC), "sox")
    moments = period_from("2026-01-01T08:00:00+01:00", "2026-01-02T00:00:00")
    assert moments.start == datetime(2026, 1, 1, 7, tzinfo=UTC) and moments.end == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(("start", "end", "scope", "field"), [
    ("2026-01-01", "2026-01-01T00:00:00Z", "all", "end"), ("2026-01-01", "2027-03-01", "all", "end"),
    ("2026-01-01\x00", "2026-02-01", "all", "start"), ("", "2026-02-01", "all", "start"),
    ("2026-01-01", "9999-12-31", "all", "end"), ("2026-01-01", "2026-02-01", "everything", "scope"),
])
def test_a_bad_period_is_refused_naming_the_field(start, end, scope, field):
    with pytest.raises(InvalidInput) as refused:
        period_from(start, end, scope)
    assert refused.value.field == field


def test_the_population_is_every_production_deployment_of_the_period_matched_to_its_change(world: World):
    rows = list(population(world.period()))
    outside = {world.deployments[name].number for name in ("in_staging", "before")}
    expected = {d.number for name, d in world.deployments.items() if d.number not in outside}
    assert [r.deployment for r in rows] == sorted(
        expected, key=lambda n: (Deployment.objects.get(number=n).started_at, n))
    by_number = {r.deployment: r for r in rows}
    clean = by_number[world.deployments["clean"].number]
    change = world.changes["clean"]
    assert (clean.kind, clean.service, clean.environment) == ("reported", "payments-api", "prod")
    assert (clean.change_number, clean.change_status, clean.requester, clean.implementer) == (
        change.number, "approved", "rita", "ivan")
    assert [(who, role) for who, role, _ in clean.approvals] == [("cleo", "cab_member")]
    assert clean.test_evidence == "CI run 4711 green" and clean.approved_digests == (clean.digest,)
    assert clean.check_id == str(world.deployments["clean"].check_id)
    run = by_number[world.deployments["clean_run"].number]
    assert run.kind == DeploymentKind.RUN and run.check_id == ""
    nothing = by_number[world.deployments["no_change"].number]
    assert (nothing.change_number, nothing.change_type, nothing.approvals) == ("", "", ())
    denied = by_number[world.deployments["denied_check"].number]
    assert denied.check_id == "", "a denying check allowed nothing"


def test_a_scope_keeps_the_deployments_of_its_cis(world: World):
    assert [r.deployment for r in population(world.period("phi"))] == [world.deployments["clean_phi"].number]
    sox = {r.deployment for r in population(world.period("sox"))}
    assert world.deployments["clean_phi"].number not in sox and world.deployments["clean"].number in sox


def test_rows_are_written_as_json_in_the_column_order(world: World):
    row = next(population(world.period()))
    values = row_dict(row)
    assert tuple(values) == COLUMNS == tuple(PopulationRow.__dataclass_fields__)
    assert values["started_at"] == row.started_at.isoformat()
    assert values["approvals"][0]["approver"] == "cleo"
    json.dumps(values)


def test_the_population_streams_in_a_fixed_number_of_queries_per_chunk(world: World,
                                                                       django_assert_max_num_queries):
    # Per chunk: the deployments, the changes, their approvals and the gate checks.
    with django_assert_max_num_queries(4):
        assert len(list(population(world.period(), chunk_size=100))) == 21
    with django_assert_max_num_queries(5 * 4):  # 21 rows in chunks of 5
        assert len(list(population(world.period(), chunk_size=5))) == 21


def test_the_reconciliation_counts_each_side_and_finds_the_unpaired_record_on_each(world: World):
    result = reconcile(world.period())
    # Allowing checks asked in the period: one per reported production deployment (bar the denied one, and with
    # the one whose deployment is dated before the period), and the idle one.
    assert result.counts == {"allowing_checks": 20, "reported_deployments": 19, "run_deployments": 2,
                             "changes": 21, "population": 21}
    assert [(u["side"], u["record"]) for u in result.unpaired] == [
        ("gate_check", str(world.idle_check.pk)),
        *sorted([("deployment", world.deployments["no_change"].number),
                 ("deployment", world.deployments["denied_check"].number)]),
        ("change", world.changes["never_deployed"].number),
    ]
    assert all(u["reason"] for u in result.unpaired)


def test_the_reconciliation_keeps_to_the_scope(world: World):
    result = reconcile(world.period("phi"))
    assert result.counts["population"] == 1 and result.unpaired == []


def test_an_empty_period_has_an_empty_population(world: World):
    later = world.period()
    empty = type(later)(start=later.end + timedelta(days=30), end=later.end + timedelta(days=60))
    assert list(population(empty)) == []
    assert reconcile(empty).unpaired == []
