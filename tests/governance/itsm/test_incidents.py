"""Incidents brought in: ServiceNow's fields and the plain ones read alike, every malformed field named with
nothing written, one row per source and id whatever the order and the road, and an older copy changing nothing."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import connections

from governance.core.errors import InvalidInput
from governance.itsm.incidents import incident_upsert
from governance.models.itsm import Incident
from tests.governance.itsm import incident_world
from tests.governance.itsm.incident_world import OPENED, servicenow_incident

estate = incident_world.estate  # the fixture


def test_a_servicenow_record_becomes_an_incident_with_its_priority_times_and_ci(estate):
    incident = incident_upsert(source="servicenow", record=servicenow_incident(
        priority="2 - High", resolved_at="2026-11-20 14:30:00"))
    assert (incident.number, incident.title, incident.priority, incident.state) == (
        "INC0010001", "Checkout fails to take payments", 2, "2")
    assert incident.opened_at == OPENED
    assert incident.resolved_at == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    assert [ci.name for ci in incident.affected_cis.all()] == ["checkout"]


def test_plain_fields_with_iso_times_and_several_cis_are_read_too(estate):
    incident = incident_upsert(source="pagerduty", record={
        "external_id": "PD-77", "title": "Search is slow", "priority": 3, "opened_at": "2026-11-20T13:00:00+01:00",
        "affected_cis": ["search-api", "Payments-API"]})
    assert incident.opened_at == OPENED
    assert sorted(ci.name for ci in incident.affected_cis.all()) == ["payments-api", "search-api"]


@pytest.mark.parametrize(("change", "field"), [
    ({"sys_id": ""}, "sys_id"),
    ({"short_description": None}, "short_description"),
    ({"priority": "6 - Whatever"}, "priority"),
    ({"priority": 0}, "priority"),
    ({"priority": None}, "priority"),
    ({"opened_at": "yesterday"}, "opened_at"),
    ({"opened_at": "2026-11-20 12:00:00+23:00"}, "opened_at"),
    ({"resolved_at": "2026-11-19 12:00:00"}, "resolved_at"),
    ({"sys_updated_on": "soon"}, "sys_updated_on"),
    ({"cmdb_ci": "no-such-ci"}, "cmdb_ci"),
    ({"affected_cis": "checkout"}, "affected_cis"),
    ({"affected_cis": ["checkout", 5]}, "affected_cis[1]"),
    ({"short_description": "x" * 501}, "short_description"),
    ({"number": "INC\x00"}, "number"),
])
def test_a_malformed_incident_is_refused_naming_the_field_and_nothing_is_written(estate, change, field):
    with pytest.raises(InvalidInput) as refused:
        incident_upsert(source="servicenow", record=servicenow_incident(**change))
    assert refused.value.field == field
    assert not Incident.objects.exists()


def test_an_unknown_ci_is_named_in_the_refusal(estate):
    with pytest.raises(InvalidInput, match="no-such-ci"):
        incident_upsert(source="servicenow", record=servicenow_incident(cmdb_ci="no-such-ci"))


def test_a_newer_copy_updates_the_incident_and_an_older_one_changes_nothing(estate):
    first = incident_upsert(source="servicenow", record=servicenow_incident())
    newer = incident_upsert(source="servicenow", record=servicenow_incident(
        state="6", resolved_at="2026-11-20 13:00:00", cmdb_ci="cart", sys_updated_on="2026-11-20 13:00:00"))
    older = incident_upsert(source="servicenow", record=servicenow_incident(
        state="1", sys_updated_on="2026-11-20 12:30:00"))
    assert first.pk == newer.pk == older.pk
    incident = Incident.objects.get()
    assert incident.state == "6"
    assert [ci.name for ci in incident.affected_cis.all()] == ["cart"]


def test_the_same_id_from_another_source_is_another_incident(estate):
    incident_upsert(source="servicenow", record=servicenow_incident())
    incident_upsert(source="other", record=servicenow_incident())
    assert Incident.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_arrivals_of_one_incident_at_once_make_one_row_and_the_later_copy_wins(estate):
    barrier = threading.Barrier(2)
    errors = []

    def arrive(updated: str, state: str) -> None:
        try:
            barrier.wait()
            incident_upsert(source="servicenow", record=servicenow_incident(sys_updated_on=updated, state=state))
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=arrive, args=("2026-11-20 12:05:00", "1")),
               threading.Thread(target=arrive, args=("2026-11-20 12:10:00", "2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert list(Incident.objects.values_list("state", flat=True)) == ["2"]
