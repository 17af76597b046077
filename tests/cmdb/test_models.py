"""The database itself holds the CMDB's rules, so a write that skips validation still cannot break them."""

import pytest
from django.db import IntegrityError, transaction

from cmdb.models import ConfigurationItem, Environment, Relationship
from tests.factories import link, make_ci, make_environment, make_team

pytestmark = pytest.mark.django_db


def refused(write) -> bool:
    """True when the database refuses `write` with an IntegrityError (and the transaction survives)."""
    try:
        with transaction.atomic():
            write()
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize("criticality", [0, 5, 99])
def test_database_refuses_a_criticality_outside_tiers_one_to_four(criticality):
    team = make_team()
    assert refused(lambda: ConfigurationItem.objects.create(
        name="billing", ci_type="service", owner_team=team, criticality=criticality))
    assert not ConfigurationItem.objects.filter(name="billing").exists()


@pytest.mark.parametrize("criticality", [1, 4])
def test_database_accepts_the_first_and_last_tier(criticality):
    ci = make_ci(f"tier-{criticality}", criticality=criticality)
    assert ConfigurationItem.objects.get(pk=ci.pk).criticality == criticality


def test_database_refuses_raising_a_criticality_out_of_range_with_a_bulk_update():
    ci = make_ci("billing", criticality=2)
    assert refused(lambda: ConfigurationItem.objects.filter(pk=ci.pk).update(criticality=7))
    ci.refresh_from_db()
    assert ci.criticality == 2


def test_database_refuses_an_unknown_ci_type():
    team = make_team()
    assert refused(lambda: ConfigurationItem.objects.create(name="billing", ci_type="mainframe", owner_team=team))


def test_database_refuses_changing_a_ci_to_an_unknown_type_with_a_bulk_update():
    ci = make_ci("billing", ci_type="service")
    assert refused(lambda: ConfigurationItem.objects.filter(pk=ci.pk).update(ci_type="spaceship"))
    ci.refresh_from_db()
    assert ci.ci_type == "service"


def test_database_refuses_an_unknown_lifecycle_status():
    team = make_team()
    assert refused(lambda: ConfigurationItem.objects.create(
        name="billing", ci_type="service", owner_team=team, lifecycle_status="decommissioned"))


def test_database_refuses_setting_an_unknown_lifecycle_status_with_a_bulk_update():
    ci = make_ci("billing")
    assert refused(lambda: ConfigurationItem.objects.filter(pk=ci.pk).update(lifecycle_status="zombie"))


def test_ci_names_are_unique_whatever_their_case():
    team = make_team()
    make_ci("Billing-API", team=team)
    assert refused(lambda: ConfigurationItem.objects.create(name="billing-api", ci_type="service", owner_team=team))
    assert refused(lambda: ConfigurationItem.objects.create(name="BILLING-API", ci_type="service", owner_team=team))
    assert ConfigurationItem.objects.filter(name__iexact="billing-api").count() == 1


def test_renaming_a_ci_onto_another_name_in_a_different_case_is_refused():
    make_ci("ledger")
    other = make_ci("journal")
    assert refused(lambda: ConfigurationItem.objects.filter(pk=other.pk).update(name="LEDGER"))
    other.refresh_from_db()
    assert other.name == "journal"


def test_distinct_ci_names_coexist():
    team = make_team()
    make_ci("ledger", team=team)
    make_ci("ledger-db", team=team)
    assert ConfigurationItem.objects.count() == 2


def test_database_refuses_a_relationship_from_a_ci_to_itself():
    ci = make_ci("api")
    assert refused(lambda: Relationship.objects.create(source=ci, target=ci, rel_type="depends_on"))
    assert not Relationship.objects.exists()


def test_database_refuses_turning_a_relationship_into_a_self_loop_with_a_bulk_update():
    api, db = make_ci("api"), make_ci("db")
    edge = link(api, db)
    assert refused(lambda: Relationship.objects.filter(pk=edge.pk).update(target=api))


def test_database_refuses_the_same_relationship_twice():
    api, db = make_ci("api"), make_ci("db")
    link(api, db, "depends_on")
    assert refused(lambda: Relationship.objects.create(source=api, target=db, rel_type="depends_on"))
    assert Relationship.objects.count() == 1


def test_two_cis_may_be_related_by_several_types_and_in_both_directions():
    api, db = make_ci("api"), make_ci("db")
    link(api, db, "depends_on")
    link(api, db, "connects_to")
    link(db, api, "depends_on")
    assert Relationship.objects.count() == 3


def test_database_refuses_an_unknown_relationship_type():
    api, db = make_ci("api"), make_ci("db")
    assert refused(lambda: Relationship.objects.create(source=api, target=db, rel_type="likes"))


def test_database_refuses_changing_a_relationship_to_an_unknown_type_with_a_bulk_update():
    edge = link(make_ci("api"), make_ci("db"))
    assert refused(lambda: Relationship.objects.filter(pk=edge.pk).update(rel_type="hates"))
    edge.refresh_from_db()
    assert edge.rel_type == "depends_on"


def test_two_environments_cannot_share_a_position_in_the_promotion_chain():
    make_environment("staging", 1)
    assert refused(lambda: Environment.objects.create(name="qa", position=1))
    assert list(Environment.objects.values_list("name", flat=True)) == ["staging"]


def test_moving_an_environment_onto_a_taken_position_is_refused():
    make_environment("dev", 0)
    prod = make_environment("prod", 2)
    assert refused(lambda: Environment.objects.filter(pk=prod.pk).update(position=0))
    prod.refresh_from_db()
    assert prod.position == 2


def test_deleting_a_ci_removes_its_relationships_at_both_ends():
    api, db, web = make_ci("api"), make_ci("db"), make_ci("web")
    link(api, db)
    link(web, api)
    api.delete()
    assert not Relationship.objects.exists()


def test_a_team_that_still_owns_cis_cannot_be_deleted():
    team = make_team()
    make_ci("api", team=team)
    assert refused(team.delete)
