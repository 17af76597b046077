"""A CI's compliance flags and tier decide the approvals its changes need: a team's maintainers change their
CIs but not those, which compliance officers and admins change with a reason the ledger keeps."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from cmdb.models import ConfigurationItem
from cmdb.services import inventory_from_document, inventory_import
from governance.core.errors import InvalidInput
from governance.roles import Role
from tests.factories import make_ci, make_user, sealed

pytestmark = pytest.mark.django_db

CIS = "/api/v1/cis/"


def ci_url(ci: ConfigurationItem) -> str:
    return f"{CIS}{ci.pk}/"


@pytest.fixture
def maintainer(team):
    user = make_user("maintainer", Role.REQUESTER)
    assign_perm("cmdb.manage_team_cis", user, team)
    return user


@pytest.fixture
def compliance_officer(db):
    return make_user("claire", Role.COMPLIANCE_OFFICER)


@pytest.fixture
def ledger_db(team):
    return make_ci("ledger-db", team=team, ci_type="database", criticality=1, sox_scoped=True, pci=True)


@pytest.mark.parametrize("lowering", [{"sox_scoped": False}, {"pci": False}, {"criticality": 4},
                                      {"sox_scoped": False, "pci": False, "criticality": 4,
                                       "compliance_reason": "not in scope any more"}])
def test_a_team_maintainer_cannot_lower_the_controls_on_their_own_ci(api, maintainer, ledger_db, lowering):
    response = api.as_user(maintainer).patch(ci_url(ledger_db), lowering, format="json")
    assert response.status_code == 403, response.content
    error = response.json()["errors"][0]
    assert (error["code"], error["field"]) == ("compliance_controlled", next(iter(lowering)))
    ledger_db.refresh_from_db()
    assert (ledger_db.sox_scoped, ledger_db.pci, ledger_db.criticality) == (True, True, 1)


def test_a_team_maintainer_cannot_raise_them_either_or_slip_them_into_an_edit(api, maintainer, team):
    ci = make_ci("statements", team=team, criticality=3)
    client = api.as_user(maintainer)
    assert client.patch(ci_url(ci), {"phi": True}, format="json").status_code == 403
    response = client.patch(ci_url(ci), {"description": "statements", "criticality": 4}, format="json")
    assert response.status_code == 403
    ci.refresh_from_db()
    assert (ci.phi, ci.criticality, ci.description) == (False, 3, "")


def test_a_team_maintainer_still_edits_the_rest_of_their_ci_and_may_resend_the_same_flags(api, maintainer,
                                                                                         ledger_db):
    response = api.as_user(maintainer).patch(
        ci_url(ledger_db), {"description": "the ledger's database", "sox_scoped": True, "criticality": 1},
        format="json")
    assert response.status_code == 200, response.content
    ledger_db.refresh_from_db()
    assert ledger_db.description == "the ledger's database"


def test_a_team_maintainer_cannot_shed_the_flags_by_deleting_the_ci(api, maintainer, ledger_db, team):
    response = api.as_user(maintainer).delete(ci_url(ledger_db))
    assert response.status_code == 403
    assert ConfigurationItem.objects.filter(pk=ledger_db.pk).exists()
    plain = make_ci("scratch", team=team, criticality=3)
    assert api.as_user(maintainer).delete(ci_url(plain)).status_code == 204


def test_a_compliance_officer_lowers_the_flags_with_a_reason_that_the_ledger_keeps(api, compliance_officer,
                                                                                  ledger_db):
    reason = "PCI scope review 2026-Q4: card data moved to the vault"
    response = api.as_user(compliance_officer).patch(
        ci_url(ledger_db), {"pci": False, "criticality": 2, "compliance_reason": reason}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["compliance_reason"] == reason
    ledger_db.refresh_from_db()
    assert (ledger_db.pci, ledger_db.criticality, ledger_db.sox_scoped) == (False, 2, True)
    [event] = sealed(action="update", object_type="cmdb.configurationitem", object_id=str(ledger_db.pk))
    assert event.actor_name == "claire"
    assert event.changes["pci"] == {"before": True, "after": False}
    assert event.changes["criticality"] == {"before": 1, "after": 2}
    assert event.changes["compliance_reason"]["after"] == reason


def test_a_change_of_flags_without_a_reason_is_refused_naming_the_reason(api, compliance_officer, ledger_db):
    for body in ({"pci": False}, {"pci": False, "compliance_reason": "   "}):
        response = api.as_user(compliance_officer).patch(ci_url(ledger_db), body, format="json")
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["compliance_reason"]
    ledger_db.refresh_from_db()
    assert ledger_db.pci is True


def test_a_reason_alone_is_refused_as_it_would_explain_nothing(api, admin_user, ledger_db):
    response = api.as_user(admin_user).patch(ci_url(ledger_db), {"compliance_reason": "just because"},
                                                     format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "compliance_reason"


def test_a_compliance_officer_changes_only_the_flags_not_the_rest_of_a_ci(api, compliance_officer, ledger_db):
    response = api.as_user(compliance_officer).patch(
        ci_url(ledger_db), {"pci": False, "compliance_reason": "review", "description": "x"}, format="json")
    assert response.status_code == 403
    ledger_db.refresh_from_db()
    assert (ledger_db.pci, ledger_db.description) == (True, "")


def test_an_import_that_lowers_flags_needs_the_compliance_permission_and_names_its_file(admin_user, ledger_db):
    records = inventory_from_document("inventory.json", {"cis": [
        {"name": "ledger-db", "type": "database", "owner_team": "payments", "pci": False}]})
    clerk = make_user("clerk")
    for codename in ("add_configurationitem", "change_configurationitem", "add_relationship"):
        assign_perm(f"cmdb.{codename}", clerk)
    with pytest.raises(InvalidInput) as refused:
        inventory_import(actor=clerk, records=records)
    assert refused.value.details[0]["field"] == "pci"
    ledger_db.refresh_from_db()
    assert ledger_db.pci is True
    inventory_import(actor=admin_user, records=records)
    ledger_db.refresh_from_db()
    assert (ledger_db.pci, ledger_db.compliance_reason) == (False, "imported from inventory.json")


def test_the_admin_shows_the_flags_read_only_to_a_staff_member_without_the_permission(client, ledger_db):
    clerk = make_user("clerk", is_staff=True)
    for codename in ("view_configurationitem", "change_configurationitem"):
        assign_perm(f"cmdb.{codename}", clerk)
    client.force_login(clerk)
    url = reverse("admin:cmdb_configurationitem_change", args=[ledger_db.pk])
    page = client.get(url).content.decode()
    assert 'name="description"' in page
    assert 'name="pci"' not in page and 'name="criticality"' not in page


def test_the_admin_asks_an_admin_for_the_reason_before_lowering_flags(client, admin_user, ledger_db, team):
    client.force_login(admin_user)
    url = reverse("admin:cmdb_configurationitem_change", args=[ledger_db.pk])
    form = {"name": "ledger-db", "ci_type": "database", "criticality": 1, "owner_team": team.pk,
            "lifecycle_status": "in_service", "sox_scoped": "on", "attributes": "{}", "tags": "",
            "outgoing-TOTAL_FORMS": 0, "outgoing-INITIAL_FORMS": 0}
    response = client.post(url, form)
    assert response.status_code == 200
    assert "Say why the compliance flags or tier change" in response.content.decode()
    ledger_db.refresh_from_db()
    assert ledger_db.pci is True
    response = client.post(url, {**form, "compliance_reason": "PCI scope review"})
    assert response.status_code == 302
    ledger_db.refresh_from_db()
    assert (ledger_db.pci, ledger_db.compliance_reason) == (False, "PCI scope review")


def test_a_compliance_officer_changes_the_flags_on_the_ci_page_with_a_reason(client, compliance_officer, ledger_db):
    client.force_login(compliance_officer)
    page = client.get(reverse("cmdb:ci_detail", args=[ledger_db.pk])).content.decode()
    url = reverse("cmdb:ci_compliance", args=[ledger_db.pk])
    assert url in page
    form = {"sox_scoped": "on", "criticality": 1, "ci_type": "database", "compliance_reason": ""}
    response = client.post(url, form)
    assert response.status_code == 200
    assert "Say why the compliance flags or tier change" in response.content.decode()
    ledger_db.refresh_from_db()
    assert ledger_db.pci is True
    response = client.post(url, {**form, "compliance_reason": "card data moved to the vault"})
    assert response.status_code == 302
    ledger_db.refresh_from_db()
    assert (ledger_db.pci, ledger_db.sox_scoped, ledger_db.compliance_reason) == (
        False, True, "card data moved to the vault")
    [event] = sealed(action="update", object_type="cmdb.configurationitem", object_id=str(ledger_db.pk))
    assert event.changes["pci"] == {"before": True, "after": False}


def test_a_maintainer_gets_no_compliance_page_and_no_link_to_it(client, maintainer, ledger_db):
    client.force_login(maintainer)
    url = reverse("cmdb:ci_compliance", args=[ledger_db.pk])
    assert url not in client.get(reverse("cmdb:ci_detail", args=[ledger_db.pk])).content.decode()
    assert client.get(url).status_code == 403
    response = client.post(url, {"criticality": 4, "compliance_reason": "mine now"})
    assert response.status_code == 403
    ledger_db.refresh_from_db()
    assert (ledger_db.criticality, ledger_db.pci) == (1, True)


def test_a_team_maintainer_cannot_retype_a_ci_to_fit_a_template_or_a_freeze(api, maintainer, ledger_db, team):
    response = api.as_user(maintainer).patch(ci_url(ledger_db), {"type": "service"}, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "ci_type"
    plain = make_ci("scratch-db", team=team, ci_type="database", criticality=3)
    assert api.as_user(maintainer).patch(ci_url(plain), {"type": "service"}, format="json").status_code == 403
    ledger_db.refresh_from_db()
    plain.refresh_from_db()
    assert (ledger_db.ci_type, plain.ci_type) == ("database", "database")


def test_a_team_maintainer_cannot_rename_a_flagged_ci_and_take_its_name_without_the_flags(api, maintainer,
                                                                                         ledger_db, team):
    client = api.as_user(maintainer)
    response = client.patch(ci_url(ledger_db), {"name": "ledger-db-old"}, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "name"
    ledger_db.refresh_from_db()
    assert ledger_db.name == "ledger-db"
    plain = make_ci("scratch", team=team, criticality=3)
    assert client.patch(ci_url(plain), {"name": "scratch-2"}, format="json").status_code == 200


def test_a_compliance_officer_renames_a_flagged_ci_with_a_reason(api, compliance_officer, ledger_db):
    response = api.as_user(compliance_officer).patch(
        ci_url(ledger_db), {"name": "ledger-db-primary", "compliance_reason": "the replica gets its own CI"},
        format="json")
    assert response.status_code == 200, response.content
    ledger_db.refresh_from_db()
    assert (ledger_db.name, ledger_db.pci) == ("ledger-db-primary", True)


def test_the_admins_bulk_delete_spares_a_flagged_ci_for_a_staff_member_without_the_permission(client, ledger_db,
                                                                                              team):
    clerk = make_user("clerk", is_staff=True)
    for codename in ("view_configurationitem", "delete_configurationitem"):
        assign_perm(f"cmdb.{codename}", clerk)
    plain = make_ci("scratch", team=team, criticality=3)
    client.force_login(clerk)
    response = client.post(reverse("admin:cmdb_configurationitem_changelist"), {
        "action": "delete_selected", "_selected_action": [ledger_db.pk, plain.pk], "post": "yes"})
    assert response.status_code == 403
    assert set(ConfigurationItem.objects.values_list("name", flat=True)) == {"ledger-db", "scratch"}
