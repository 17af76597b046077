"""Samples: sized by the stated table, stratified by risk and change type, the same for the same rows and seed, kept
with who drew them, and drawn only by those who may export evidence."""

import re
from collections import Counter

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.audit.ledger import audit_seal
from governance.core.errors import Forbidden, InvalidInput
from governance.evidence.population import population
from governance.evidence.samples import sample_draw, sample_record, sample_size
from governance.models import AuditEvent, AuditSample
from tests.factories import make_user
from tests.governance.evidence.samples_world import SampleWorld, row, rows_by_stratum

MIXED = {("critical", "emergency"): 3, ("high", "normal"): 60, ("low", "standard"): 120, ("medium", "normal"): 15,
         ("low", "emergency"): 2}


@pytest.mark.parametrize(("population_size", "size"), [
    (0, 0), (1, 1), (24, 24), (25, 25), (26, 25), (50, 25), (51, 30), (250, 30), (251, 40), (1000, 40), (1001, 60),
    (50_000, 60),
])
def test_sample_size_follows_the_table_at_its_boundaries(population_size, size):
    assert sample_size(population_size)[0] == size


def test_the_rule_names_the_population_and_the_whole_table():
    size, rule = sample_size(137)
    assert size == 30
    assert rule.startswith("137 changes in the population, so 30")
    assert "25 or fewer: all; 26-50: 25; 51-250: 30; 251-1,000: 40; over 1,000: 60" in rule
    assert len(sample_size(10**9)[1]) <= AuditSample._meta.get_field("rule").max_length


def test_the_same_rows_and_seed_draw_the_same_changes_in_the_same_order_whatever_the_rows_order():
    rows = rows_by_stratum(MIXED)
    first = sample_draw(rows, 20261203)
    assert len(first) == 30
    assert sample_draw(rows, 20261203) == first
    assert sample_draw(list(reversed(rows)), 20261203) == first


def test_another_seed_draws_another_sample():
    rows = rows_by_stratum(MIXED)
    assert sample_draw(rows, 1) != sample_draw(rows, 2)


def test_a_change_deployed_many_times_counts_once_and_deployments_without_a_change_are_never_sampled():
    rows = [row("CHG0000001"), row("CHG0000001"), row("CHG0000002", "high"), row(""), row(""), row("CHG0000003")]
    sample = sample_draw(rows, 5)
    assert sorted(sample) == ["CHG0000001", "CHG0000002", "CHG0000003"]


def test_every_stratum_is_represented_and_shares_follow_its_size():
    # 30 of 200: quotas 0.45, 9, 18, 2.25 and 0.3 (in stratum order) give 0, 9, 18, 2, 0 and the largest
    # remainder's one; the stratum still empty then takes one from the largest.
    rows = rows_by_stratum(MIXED)
    stratum = {r.change_number: (r.risk_level, r.change_type) for r in rows}
    drawn = Counter(stratum[number] for number in sample_draw(rows, 99))
    assert drawn == {("critical", "emergency"): 1, ("high", "normal"): 9, ("low", "standard"): 17,
                     ("medium", "normal"): 2, ("low", "emergency"): 1}


def test_shares_are_exactly_proportional_when_the_quotas_are_whole():
    rows = rows_by_stratum({("high", "normal"): 100, ("low", "normal"): 60, ("low", "standard"): 40})
    stratum = {r.change_number: (r.risk_level, r.change_type) for r in rows}
    drawn = Counter(stratum[number] for number in sample_draw(rows, 3))
    assert drawn == {("high", "normal"): 15, ("low", "normal"): 9, ("low", "standard"): 6}


def test_a_small_population_is_sampled_whole():
    rows = rows_by_stratum({("high", "normal"): 5, ("low", "standard"): 20})
    assert sorted(sample_draw(rows, 7)) == sorted(r.change_number for r in rows)


@pytest.fixture
def world(db):
    return SampleWorld()


def test_an_auditor_draws_a_sample_from_the_period_population_and_the_ledger_keeps_it(world, auditor):
    changes = world.population({("low", "standard"): 20, ("high", "normal"): 8, ("critical", "emergency"): 2})
    sample = sample_record(actor=auditor, period=world.period(), seed=42)
    sample.refresh_from_db()
    assert sample.population_size == 30
    assert len(sample.change_numbers) == 25
    assert set(sample.change_numbers) <= {c.number for c in changes}
    assert sample.change_numbers == sample_draw(list(population(world.period())), 42)
    assert sample.rule.startswith("30 changes in the population, so 25")
    assert sample.drawn_by == auditor
    again = sample_record(actor=auditor, period=world.period(), seed=42)
    assert again.change_numbers == sample.change_numbers
    audit_seal()
    created = AuditEvent.objects.get(object_type="governance.auditsample", object_id=str(sample.pk), action="create")
    assert created.changes["seed"] == {"before": None, "after": 42}
    assert created.changes["change_numbers"]["after"] == sample.change_numbers


def test_an_empty_period_gives_an_empty_sample(world, admin_user):
    sample = sample_record(actor=admin_user, period=world.period(), seed=1)
    assert (sample.population_size, sample.change_numbers) == (0, [])


@pytest.mark.parametrize("persona", ["cab_member", "requester", "release_manager", "outsider"])
def test_only_exporters_of_evidence_draw_samples(world, persona, request):
    with pytest.raises(Forbidden):
        sample_record(actor=request.getfixturevalue(persona), period=world.period(), seed=1)
    assert not AuditSample.objects.exists()


@pytest.mark.parametrize("seed", [-1, 2**63, True, "7", 1.5])
def test_a_seed_outside_a_bigint_is_refused_naming_the_seed(world, auditor, seed):
    with pytest.raises(InvalidInput) as refused:
        sample_record(actor=auditor, period=world.period(), seed=seed)
    assert refused.value.field == "seed"


# --- the samples page ----------------------------------------------------------------------------------------------

def _draw(client, **data):
    fields = {"start": "2026-01-01", "end": "2026-03-31", "scope": "all", "seed": "123", **data}
    return client.post(reverse("evidence:samples"), {k: v for k, v in fields.items() if v is not None})


def test_the_auditor_draws_a_sample_on_the_page_and_finds_it_listed_with_its_changes(world, auditor, client):
    changes = world.population({("low", "standard"): 3})
    client.force_login(auditor)
    today = world.now.date().isoformat()
    response = _draw(client, start=today, end=today, seed="777")
    assert response.status_code == 302
    sample = AuditSample.objects.get()
    assert (sample.seed, sample.drawn_by, sample.population_size) == (777, auditor, 3)
    audit_seal()
    recorded = AuditEvent.objects.get(object_type="governance.auditsample", object_id=str(sample.pk))
    assert (recorded.action, recorded.actor_name) == ("create", "auditor")
    page = client.get(reverse("evidence:samples")).content.decode()
    for change in changes:
        assert reverse("evidence:change_evidence", args=[change.number]) in page
    assert "777" in page


@pytest.mark.parametrize(("data", "field"), [
    ({"start": None}, "start"), ({"start": "yesterday"}, "start"), ({"end": "2025-12-01"}, "end"),
    ({"end": "2027-12-31"}, "end"), ({"scope": "pci"}, "scope"), ({"seed": "abc"}, "seed"), ({"seed": "-4"}, "seed"),
    ({"seed": str(2**63)}, "seed"), ({"start": "2026-01-01\x00"}, "start"),
])
def test_bad_input_is_a_400_naming_the_field(world, auditor, client, data, field):
    client.force_login(auditor)
    response = _draw(client, **data)
    assert response.status_code == 400
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert not AuditSample.objects.exists()


@pytest.mark.parametrize(("persona", "status"), [
    ("auditor", 200), ("admin_user", 200), ("cab_member", 403), ("requester", 403), ("release_manager", 403),
    ("outsider", 403),
])
def test_the_samples_page_is_for_readers_of_evidence(world, client, request, persona, status):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("evidence:samples")).status_code == status


def test_a_reader_who_may_not_export_sees_samples_but_cannot_draw_one(world, client):
    reader = make_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(reader)
    page = client.get(reverse("evidence:samples"))
    assert page.status_code == 200 and 'id="draw-sample"' not in page.content.decode()
    assert _draw(client).status_code == 403
    assert not AuditSample.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("evidence:samples"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_samples_list_costs_the_same_queries_however_many_samples(world, auditor, client):
    client.force_login(auditor)
    world.population({("low", "standard"): 2})
    sample_record(actor=auditor, period=world.period(), seed=1)
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("evidence:samples"))
    for seed in range(2, 12):
        sample_record(actor=make_user(f"auditor{seed}", "auditor"), period=world.period(), seed=seed)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("evidence:samples"))
    assert len(re.findall(r"<tr>", response.content.decode())) >= 11
    assert len(many) == len(one)
