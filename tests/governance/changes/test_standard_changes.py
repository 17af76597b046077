"""Standard changes: a template limits what may be raised from it (CIs, environments, risk), is itself approved
version by version by someone who did not write that version, and the change and the ledger keep the version
that approved each change."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.changes.services import (
    change_request_create,
    change_request_update,
)
from governance.changes.standard import (
    standard_template_approve,
    standard_template_create,
    standard_template_update,
)
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.gate.services import Question, deployment_check
from governance.models import ApprovalRequirement, ChangeRequest, ChangeStatusChange, StandardChangeTemplate
from governance.models import ChangeStatus as S
from tests.factories import make_change, make_ci, make_environment, make_template, sealed
from tests.governance.helpers import submit

pytestmark = pytest.mark.django_db

TLS = "Rotate TLS certificates"


@pytest.fixture
def envs(db):
    return {name: make_environment(name, position, is_production=name == "prod")
            for position, name in enumerate(["staging", "prod"])}


@pytest.fixture
def edge_lb(team):
    return make_ci("edge-lb-prod", team=team, ci_type="network", criticality=3)


@pytest.fixture
def payments_db(team, envs):
    """The SOX- and PCI-scoped production database of the finding."""
    return make_ci("payments-db", team=team, ci_type="database", criticality=1, sox_scoped=True, pci=True,
                   environment=envs["prod"])


@pytest.fixture
def tls(envs, edge_lb):
    """The TLS template as it should be: services and the named load balancer, in staging and prod."""
    return make_template(TLS, ci_types=["service"], cis=[edge_lb], environments=list(envs.values()),
                         max_risk_level="high", implementation_plan="Swap the certificate.")


def standard(requester, template, *, cis, environment, **fields) -> ChangeRequest:
    """A draft standard change written as a draft is stored, whatever its fit: submission must still check it."""
    return make_change(requester, cis=cis, environment=environment, change_type="standard", template=template,
                       backout_plan="", **fields)


def refused_on_submit(change: ChangeRequest) -> Conflict:
    """Submission refused, and nothing of it left: still a draft, no move, no assessment, no version."""
    with pytest.raises(Conflict) as refusal:
        submit(change)
    change.refresh_from_db()
    assert change.status == S.DRAFT
    assert (change.risk_level, change.template_version, change.approved_at) == ("", None, None)
    assert not ChangeStatusChange.objects.filter(change=change).exists()
    return refusal.value


def gate_codes(change: ChangeRequest, service, pipeline) -> set[str]:
    check = deployment_check(actor=pipeline, token=None, question=Question(
        change=change.number, service=service.name, environment=change.environment.name, digest=""))
    return {reason["code"] for reason in check.reasons}


# --- the finding, as written -------------------------------------------------------------------------------------

def test_the_tls_template_cannot_ship_a_sox_pci_production_database(requester, pipeline, tls, payments_db, envs):
    change = standard(requester, tls, cis=[payments_db], environment=envs["prod"],
                      planned_start=timezone.now() - timedelta(minutes=5))
    refusal = refused_on_submit(change)
    assert refusal.message == "payments-db is a database; the template Rotate TLS certificates allows services and " \
                              "edge-lb-prod only."
    assert (refusal.field, refusal.code) == ("affected_cis", "outside_template_scope")
    assert "change_not_approved" in gate_codes(change, payments_db, pipeline)


def test_the_same_change_is_refused_when_raised_and_when_edited_to_fit_nothing(requester, tls, payments_db, edge_lb,
                                                                               envs):
    start = timezone.now() + timedelta(days=1)
    fields = {"title": "Rotate certs", "change_type": "standard", "template": tls, "environment": envs["prod"],
              "planned_start": start, "planned_end": start + timedelta(hours=1), "implementation_plan": "swap"}
    with pytest.raises(Conflict, match="payments-db is a database") as refusal:
        change_request_create(actor=requester, cis=[payments_db], **fields)
    assert refusal.value.field == "affected_cis"
    assert not ChangeRequest.objects.exists()
    change = change_request_create(actor=requester, cis=[edge_lb], **fields)
    with pytest.raises(Conflict, match="payments-db is a database"):
        change_request_update(actor=requester, change=change, cis=[edge_lb, payments_db])
    assert list(change.affected_cis.all()) == [edge_lb]


def test_an_in_scope_change_is_approved_without_cab_and_the_gate_lets_it_through(requester, pipeline, tls, edge_lb,
                                                                                  envs):
    change = submit(standard(requester, tls, cis=[edge_lb], environment=envs["prod"],
                             planned_start=timezone.now() - timedelta(minutes=5)))
    assert change.status == S.APPROVED
    assert change.template_version == 1
    assert not ApprovalRequirement.objects.filter(change=change).exists()
    assert ChangeStatusChange.objects.filter(change=change).last().reason == (
        "pre-approved standard change: Rotate TLS certificates, version 1")
    assert "change_not_approved" not in gate_codes(change, edge_lb, pipeline)


def test_a_service_fits_by_its_type_and_a_named_ci_whatever_its_type(requester, tls, edge_lb, team, envs):
    service = make_ci("payments-api", team=team, ci_type="service", criticality=4)
    change = submit(standard(requester, tls, cis=[service, edge_lb], environment=envs["staging"]))
    assert change.status == S.APPROVED


def test_the_ledger_names_the_template_and_the_version_that_approved_a_change(requester, tls, edge_lb, envs):
    change = submit(standard(requester, tls, cis=[edge_lb], environment=envs["staging"]))
    [event] = sealed(action="standard_change_approved", object_id=str(change.pk))
    assert event.object_label == str(change)
    assert {key: event.context[key] for key in ("template", "template_id", "template_version")} == {
        "template": TLS, "template_id": tls.pk, "template_version": 1}
    assert event.context["template_approved_by"] == tls.approved_by.username
    [update] = [e for e in sealed(action="update", object_type="governance.changerequest",
                                  object_id=str(change.pk)) if "template_version" in e.changes]
    assert update.changes["template_version"] == {"before": None, "after": 1}


# --- what the scope limits ----------------------------------------------------------------------------------------

def test_an_environment_outside_the_template_is_refused(requester, team, edge_lb, envs):
    staging_only = make_template("Restart a pod", cis=[edge_lb], environments=[envs["staging"]])
    refusal = refused_on_submit(standard(requester, staging_only, cis=[edge_lb], environment=envs["prod"]))
    assert refusal.message == "The template Restart a pod is for staging only, not prod."
    assert refusal.field == "environment"


def test_a_change_riskier_than_the_template_allows_is_refused(requester, team, envs):
    tier_1 = make_ci("ledger", team=team, criticality=1)  # tier 1 (30) in production (15), no backout plan (10)
    low_only = make_template("Restart a pod", max_risk_level="medium")
    refusal = refused_on_submit(standard(requester, low_only, cis=[tier_1], environment=envs["prod"]))
    assert refusal.message == ("This change's risk is high; the template Restart a pod allows medium risk at most: "
                               "raise it as a normal change.")
    assert refusal.field == "risk_level"
    tier_4 = make_ci("wiki", team=team, criticality=4)
    assert submit(standard(requester, low_only, cis=[tier_4], environment=envs["staging"])).status == S.APPROVED


def test_an_unapproved_template_is_refused(requester, edge_lb, envs):
    draft = make_template("Rotate TLS certificates", cis=[edge_lb], approved=False)
    refusal = refused_on_submit(standard(requester, draft, cis=[edge_lb], environment=envs["prod"]))
    assert refusal.field == "template"
    assert refusal.code == "template_not_approved"
    assert "Version 1 of the template Rotate TLS certificates is not approved yet" in refusal.message


def test_a_retired_template_is_refused(requester, tls, edge_lb, envs):
    change = standard(requester, tls, cis=[edge_lb], environment=envs["prod"])
    StandardChangeTemplate.objects.filter(pk=tls.pk).update(active=False)
    refusal = refused_on_submit(change)
    assert (refusal.field, refusal.code) == ("template", "template_retired")


def test_a_change_cannot_be_standard_without_an_approved_template_even_by_api(api, requester, edge_lb, envs):
    make_template("Unreviewed", cis=[edge_lb], approved=False)
    start = timezone.now() + timedelta(days=1)
    response = api.as_user(requester).post("/api/v1/changes/", {
        "title": "Rotate", "change_type": "standard", "template": "Unreviewed", "affected_cis": ["edge-lb-prod"],
        "environment": "prod", "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(hours=1)).isoformat(), "implementation_plan": "swap"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["errors"][0]["field"] == "template"
    assert not ChangeRequest.objects.exists()


def test_moving_an_approved_standard_change_out_of_scope_is_refused(requester, tls, edge_lb, payments_db, envs):
    change = submit(standard(requester, tls, cis=[edge_lb], environment=envs["staging"]))
    with pytest.raises(Conflict, match="payments-db is a database"):
        change_request_update(actor=requester, change=change, cis=[payments_db])
    change.refresh_from_db()
    assert (change.status, list(change.affected_cis.all()), change.revision) == (S.APPROVED, [edge_lb], 1)


def test_moving_an_approved_standard_change_within_scope_keeps_it_approved_by_the_version_it_fits(
        requester, tls, edge_lb, envs):
    change = submit(standard(requester, tls, cis=[edge_lb], environment=envs["staging"]))
    change = change_request_update(actor=requester, change=change, environment=envs["prod"])
    change.refresh_from_db()
    assert (change.status, change.revision, change.template_version) == (S.APPROVED, 2, 1)
    assert ChangeStatusChange.objects.filter(change=change).last().reason == (
        "approvals went stale: environment changed; still fits Rotate TLS certificates, version 1")
    assert len(sealed(action="standard_change_approved", object_id=str(change.pk))) == 2


# --- the template's own approval ----------------------------------------------------------------------------------

def test_an_edited_template_needs_approving_again(admin_user, release_manager, requester, tls, edge_lb, envs):
    change = standard(requester, tls, cis=[edge_lb], environment=envs["prod"])
    tls = standard_template_update(actor=admin_user, template=tls, environments=[envs["staging"], envs["prod"]],
                                   implementation_plan="Swap the certificate, then check the chain.")
    assert (tls.version, tls.approved, tls.edited_by) == (2, False, admin_user)
    refused_on_submit(change)
    standard_template_approve(actor=release_manager, template=tls)
    assert submit(change).template_version == 2


def test_an_edit_of_the_scope_alone_makes_a_new_version(admin_user, tls, team):
    tls = standard_template_update(actor=admin_user, template=tls, cis=[make_ci("edge-lb-dr", team=team)])
    assert (tls.version, tls.approved) == (2, False)


def test_retiring_a_template_or_saving_it_unchanged_keeps_its_version_and_approval(admin_user, tls, edge_lb, envs):
    tls = standard_template_update(actor=admin_user, template=tls, name=TLS, cis=[edge_lb],
                                   environments=list(envs.values()), max_risk_level="high")
    tls = standard_template_update(actor=admin_user, template=tls, active=False)
    assert (tls.version, tls.approved, tls.active) == (1, True, False)


def test_the_editor_of_a_version_cannot_approve_it(admin_user, release_manager, edge_lb, envs):
    template = standard_template_create(actor=admin_user, name=TLS, cis=[edge_lb], environments=[envs["prod"]])
    with pytest.raises(Forbidden, match="You made version 1 of the template") as refusal:
        standard_template_approve(actor=admin_user, template=template)
    assert refusal.value.code == "segregation_of_duties"
    assert standard_template_approve(actor=release_manager, template=template).approved_by == release_manager
    # The database holds the rule too, whatever writes the row.
    with pytest.raises(IntegrityError), transaction.atomic():
        StandardChangeTemplate.objects.filter(pk=template.pk).update(approved_by=admin_user)


def test_a_cab_member_or_release_manager_approves_templates_and_nobody_else(
        admin_user, cab_member, requester, auditor, edge_lb, envs):
    template = standard_template_create(actor=admin_user, name=TLS, cis=[edge_lb], environments=[envs["prod"]])
    for outsider in (requester, auditor):
        with pytest.raises(Forbidden, match="A CAB member or a release manager approves"):
            standard_template_approve(actor=outsider, template=template)
    assert standard_template_approve(actor=cab_member, template=template).approved_by == cab_member
    with pytest.raises(Conflict, match="already approved"):
        standard_template_approve(actor=cab_member, template=template)


def test_only_administrators_write_templates(requester, release_manager, tls):
    for person in (requester, release_manager):
        with pytest.raises(Forbidden):
            standard_template_create(actor=person, name="Anything goes", ci_types=["database"])
        with pytest.raises(Forbidden):
            standard_template_update(actor=person, template=tls, max_risk_level="critical")
    tls.refresh_from_db()
    assert (tls.version, tls.max_risk_level) == (1, "high")


def test_a_template_without_a_scope_cannot_be_approved(admin_user, release_manager, envs):
    anywhere = standard_template_create(actor=admin_user, name="Anything, anywhere", environments=list(envs.values()))
    any_service = standard_template_create(actor=admin_user, name="Any service, nowhere", ci_types=["service"])
    for template, field in ((anywhere, "ci_types"), (any_service, "environments")):
        with pytest.raises(InvalidInput) as refusal:
            standard_template_approve(actor=release_manager, template=template)
        assert refusal.value.field == field
        template.refresh_from_db()
        assert not template.approved


def test_a_bad_template_field_is_refused_naming_it(admin_user):
    with pytest.raises(InvalidInput) as refusal:
        standard_template_create(actor=admin_user, name="Odd", ci_types=["toaster"])
    assert refusal.value.field == "ci_types"
    with pytest.raises(InvalidInput) as refusal:
        standard_template_create(actor=admin_user, name="Odd", version=7)
    assert refusal.value.field == "version"
    assert not StandardChangeTemplate.objects.exists()


# --- where people see it ------------------------------------------------------------------------------------------

def test_the_change_page_shows_the_template_and_the_version_used(client, admin_user, requester, tls, edge_lb, envs):
    change = submit(standard(requester, tls, cis=[edge_lb], environment=envs["staging"]))
    standard_template_update(actor=admin_user, template=tls, description="Now also for the DR site.")
    client.force_login(requester)
    page = client.get(reverse("governance:change_detail", args=[change.number])).content.decode()
    assert "template “Rotate TLS certificates”" in page
    assert '<span id="template-version">version 1</span>' in page
    assert "(the template is now at version 2)" in page


def test_submitting_from_the_page_shows_why_the_change_cannot_be_standard(client, requester, tls, payments_db, envs):
    change = standard(requester, tls, cis=[payments_db], environment=envs["prod"])
    client.force_login(requester)
    response = client.post(reverse("governance:change_transition", args=[change.number]), {"target": "submitted"},
                           follow=True)
    assert "payments-db is a database; the template Rotate TLS certificates allows" in response.content.decode()
    change.refresh_from_db()
    assert change.status == S.DRAFT


def test_the_change_form_refuses_a_ci_outside_the_template_on_the_cis_field(client, requester, tls, payments_db,
                                                                           envs):
    client.force_login(requester)
    start = timezone.now() + timedelta(days=1)
    response = client.post(reverse("governance:change_create"), {
        "title": "Rotate", "change_type": "standard", "template": tls.pk, "environment": "prod",
        "cis": [payments_db.pk], "planned_start": start.strftime("%Y-%m-%dT%H:%M"),
        "planned_end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "implementation_plan": "swap"})
    assert response.status_code == 400
    assert "payments-db is a database" in response.context["form"].errors["cis"][0]
    assert not ChangeRequest.objects.exists()


def test_submitting_by_api_answers_409_naming_the_field(api, requester, tls, payments_db, envs):
    change = standard(requester, tls, cis=[payments_db], environment=envs["prod"])
    response = api.as_user(requester).post(f"/api/v1/changes/{change.number}/transitions/",
                                           {"target": "submitted"}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "affected_cis"
    assert response.json()["errors"][0]["code"] == "outside_template_scope"


def test_the_api_gives_the_version_a_change_used(api, requester, tls, edge_lb, envs):
    change = submit(standard(requester, tls, cis=[edge_lb], environment=envs["staging"]))
    body = api.as_user(requester).get(f"/api/v1/changes/{change.number}/").json()
    assert (body["template"], body["template_version"]) == (TLS, 1)


def test_the_admin_saves_an_edit_as_a_new_version_and_approves_through_the_service(
        client, admin_user, release_manager, tls, edge_lb, envs):
    client.force_login(admin_user)
    url = reverse("admin:governance_standardchangetemplate_change", args=[tls.pk])
    form = {"name": TLS, "description": "", "implementation_plan": "Swap it.", "backout_plan": "", "active": "on",
            "ci_types": ["service"], "cis": [edge_lb.pk], "environments": [envs["prod"].pk],
            "max_risk_level": "high"}
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    tls.refresh_from_db()
    assert (tls.version, tls.approved, tls.edited_by, tls.implementation_plan) == (2, False, admin_user, "Swap it.")
    assert list(tls.environments.all()) == [envs["prod"]]

    changelist = reverse("admin:governance_standardchangetemplate_changelist")
    client.post(changelist, {"action": "approve", "_selected_action": [tls.pk]})
    tls.refresh_from_db()
    assert not tls.approved  # the admin made version 2

    release_manager.is_staff = True
    release_manager.save(update_fields=["is_staff"])
    client.force_login(release_manager)
    response = client.post(changelist, {"action": "approve", "_selected_action": [tls.pk]})
    assert response.status_code == 302
    tls.refresh_from_db()
    assert (tls.approved_by, tls.version) == (release_manager, 2)


def test_the_admin_shows_a_refusal_on_the_field_it_names(client, admin_user, tls):
    client.force_login(admin_user)
    response = client.post(reverse("admin:governance_standardchangetemplate_add"), {
        "name": "Odd", "max_risk_level": "low", "ci_types": ["toaster"]})
    assert response.status_code == 200
    assert "toaster" in response.context["adminform"].form.errors["ci_types"][0]
    assert StandardChangeTemplate.objects.count() == 1


# --- the API ------------------------------------------------------------------------------------------------------

TEMPLATES = "/api/v1/standard-templates/"


def test_the_templates_api_lists_scope_version_and_approval_to_readers_only(api, auditor, outsider, tls):
    body = api.as_user(auditor).get(TEMPLATES).json()
    [listed] = body["results"]
    assert {key: listed[key] for key in ("name", "ci_types", "cis", "environments", "max_risk_level", "version",
                                         "approved", "approved_by")} == {
        "name": TLS, "ci_types": ["service"], "cis": ["edge-lb-prod"], "environments": ["staging", "prod"],
        "max_risk_level": "high", "version": 1, "approved": True, "approved_by": tls.approved_by.username}
    assert api.as_user(outsider).get(TEMPLATES).status_code == 403
    assert api.get(TEMPLATES).status_code == 401


def test_the_templates_list_keeps_a_fixed_number_of_queries(api, auditor, team, envs,
                                                             django_assert_max_num_queries):
    client = api.as_user(auditor)
    client.get(TEMPLATES)  # the token's first use stamps it; later calls do not
    make_template("One", cis=[make_ci(team=team)])
    with CaptureQueriesContext(connection) as captured:
        client.get(TEMPLATES)
    for n in range(5):
        make_template(f"More {n}", cis=[make_ci(team=team), make_ci(team=team)])
    with django_assert_max_num_queries(len(captured)):
        assert len(client.get(TEMPLATES).json()["results"]) == 6


def test_a_release_manager_approves_a_template_through_the_api_but_not_their_own_version(
        api, admin_user, release_manager, requester, edge_lb, envs):
    template = standard_template_create(actor=admin_user, name=TLS, cis=[edge_lb], environments=[envs["prod"]])
    url = f"{TEMPLATES}{template.pk}/approve/"
    refused = api.as_user(requester).post(url)
    assert refused.status_code == 403
    template.refresh_from_db()
    assert not template.approved
    response = api.as_user(release_manager).post(url)
    assert response.status_code == 200, response.content
    assert (response.json()["approved_by"], response.json()["version"]) == ("release_manager", 1)
    assert api.as_user(release_manager).post(url).status_code == 409

    release_manager.groups.add(*admin_user.groups.all())
    template = standard_template_update(actor=release_manager, template=template, description="Edited.")
    response = api.as_user(release_manager).post(url)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "segregation_of_duties"
