"""Who may be named a change's implementer: anyone active who may carry a change out, never an auditor (who changes
nothing) nor a service account (a pipeline, not a person). The form offers only them; the API refuses the others
naming the field."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.changes.forms import ChangeRequestForm
from governance.changes.services import change_request_create, change_request_update
from governance.core.errors import InvalidInput
from governance.models import ChangeRequest
from governance.roles import Role, implementer_refusal, implementers
from tests.factories import make_change, make_user

pytestmark = pytest.mark.django_db

NEW = "/changes/new/"
CHANGES = "/api/v1/changes/"


@pytest.fixture
def sre(db):
    return make_user("sre", Role.SRE, first_name="Sam", last_name="Okoro")


@pytest.fixture
def retired(db):
    return make_user("retired", Role.REQUESTER, is_active=False)


def test_the_form_offers_people_who_may_implement_and_no_auditor_or_service_account(
    requester, release_manager, sre, auditor, pipeline, admin_user, retired
):
    offered = set(ChangeRequestForm().fields["implementer"].queryset.values_list("username", flat=True))
    assert offered == {"requester", "release_manager", "sre", "admin"}
    assert set(implementers().values_list("username", flat=True)) == offered


def test_the_change_page_lists_no_auditor_or_service_account(client, requester, sre, auditor, pipeline):
    client.force_login(requester)
    html = client.get(NEW).content.decode()
    select = re.search(r'<select name="implementer".*?</select>', html, re.S).group(0)
    assert "Sam Okoro (sre)" in select and "requester" in select
    assert "auditor" not in select and "pipeline" not in select


def test_a_person_who_is_also_an_auditor_is_not_offered(requester):
    both = make_user("dual", Role.REQUESTER, Role.AUDITOR)
    assert both not in implementers()
    assert (
        implementer_refusal(both)
        == "dual is an auditor and cannot implement a change: name the person who carries it out."
    )


def test_posting_an_auditor_as_implementer_on_the_form_is_refused_on_the_field(client, requester, auditor, staging):
    client.force_login(requester)
    start = timezone.now() + timedelta(days=3)
    response = client.post(
        NEW,
        {
            "title": "Rotate payments-db credentials",
            "change_type": "normal",
            "environment": "staging",
            "implementer": auditor.pk,
            "planned_start": start.strftime("%Y-%m-%dT%H:%M"),
            "planned_end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 400
    assert 'data-field="implementer"' in response.content.decode()
    assert not ChangeRequest.objects.exists()


@pytest.mark.parametrize(("persona", "says"), [("auditor", "is an auditor"), ("pipeline", "is a service account")])
def test_the_api_refuses_an_auditor_or_a_service_account_as_implementer_naming_the_field(
    api, request, requester, staging, persona, says
):
    request.getfixturevalue(persona)
    response = api.as_user(requester).post(
        CHANGES, {"title": "Rotate credentials", "implementer": persona}, format="json"
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["field"] == "implementer" and error["code"] == "not_an_implementer"
    assert says in error["message"]
    assert not ChangeRequest.objects.exists()


def test_the_api_refuses_one_on_an_edit_too_and_keeps_the_implementer(api, requester, sre, auditor):
    change = make_change(requester, implementer=sre)
    response = api.as_user(requester).patch(f"{CHANGES}{change.number}/", {"implementer": "auditor"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "implementer"
    change.refresh_from_db()
    assert change.implementer == sre


def test_the_api_takes_a_person_who_may_implement(api, requester, sre):
    response = api.as_user(requester).post(
        CHANGES, {"title": "Rotate credentials", "implementer": "sre"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert ChangeRequest.objects.get().implementer == sre


def test_the_service_refuses_an_auditor_as_implementer_naming_the_field(requester, auditor, sre):
    with pytest.raises(InvalidInput) as refused:
        change_request_create(actor=requester, cis=[], title="Rotate credentials", implementer=auditor)
    assert refused.value.field == "implementer"
    change = make_change(requester, implementer=sre)
    with pytest.raises(InvalidInput) as refused:
        change_request_update(actor=requester, change=change, implementer=auditor)
    assert refused.value.field == "implementer"
