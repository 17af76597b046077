"""The tokens page for an administrator: tokens issued for service accounts (pipelines) and rotated in the browser,
each secret shown once; revoking and rotating confirmed first; the scope's checkboxes beside their labels."""

import html

import pytest
from django.urls import reverse

from governance.access import services
from governance.access.services import api_token_authenticate, api_token_create, api_token_revoke, api_token_rotate
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.models import ApiToken
from governance.roles import Role
from tests.factories import make_ci, make_environment, make_user

pytestmark = pytest.mark.django_db


def secret_on(response) -> str:
    return response.content.decode().split('id="new-token">', 1)[1].split("</pre>", 1)[0]


def owner_choices(response) -> list[str]:
    select = response.content.decode().split('name="owner"', 1)[1].split("</select>", 1)[0]
    return [part.split(">", 1)[1].split("<", 1)[0] for part in select.split("<option")[1:]]


def test_an_admin_issues_a_token_for_a_service_account_and_sees_it_once(client, admin_user, pipeline):
    prod = make_environment("prod", 3, is_production=True)
    make_environment("staging", 2)
    make_ci("payments-api")
    client.force_login(admin_user)
    response = client.post(reverse("token_list"), {"owner": pipeline.pk, "name": "payments deploy",
                                                   "services": "payments-api", "environments": [prod.pk]})
    assert response.status_code == 200
    token = ApiToken.objects.get(name="payments deploy")
    assert (token.user, token.created_by) == (pipeline, admin_user)
    assert [env.name for env in token.environments.all()] == ["prod"]
    assert api_token_authenticate(secret_on(response)).user == pipeline
    assert response["Cache-Control"] == "no-store"
    assert "Token “payments deploy” created for pipeline" in html.unescape(response.content.decode())
    listed = client.get(reverse("token_list")).content.decode()
    assert 'id="new-token"' not in listed and secret_on(response) not in listed
    row = listed.split(f'data-token="{token.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>pipeline</td>" in row


def test_the_owner_picker_offers_the_admin_and_active_service_accounts_only(client, admin_user, pipeline,
                                                                           requester):
    make_user("retired-ci", Role.SERVICE_ACCOUNT, is_active=False)
    make_user("argo", Role.SERVICE_ACCOUNT)
    client.force_login(admin_user)
    assert owner_choices(client.get(reverse("token_list"))) == ["admin", "argo", "pipeline"]


def test_a_person_without_the_right_gets_no_picker_and_a_posted_owner_is_ignored(client, requester, pipeline):
    client.force_login(requester)
    response = client.get(reverse("token_list"))
    assert 'name="owner"' not in response.content.decode()
    client.post(reverse("token_list"), {"owner": pipeline.pk, "name": "laptop"})
    assert ApiToken.objects.get(name="laptop").user == requester


def test_an_admin_may_not_issue_a_token_for_another_person(admin_user, cab_member):
    with pytest.raises(Forbidden) as refused:
        api_token_create(actor=admin_user, owner=cab_member, name="act as carla")
    assert refused.value.field == "owner"
    assert "cab_member is not a service account" in refused.value.message
    assert not ApiToken.objects.exists()


def test_rotating_issues_a_new_secret_with_the_same_scope_and_revokes_the_old(admin_user, pipeline):
    prod = make_environment("prod", 3, is_production=True)
    service = make_ci("payments-api")
    old = api_token_create(actor=admin_user, owner=pipeline, name="payments deploy", expires_days=30,
                           services=[service], environments=[prod])
    new = api_token_rotate(actor=admin_user, token=old.token)
    assert api_token_authenticate(old.secret) is None and api_token_authenticate(new.secret).pk == new.token.pk
    new.token.refresh_from_db()
    assert (new.token.user, new.token.name, new.token.created_by) == (pipeline, "payments deploy", admin_user)
    assert list(new.token.services.all()) == [service] and list(new.token.environments.all()) == [prod]
    assert new.token.services_scoped and new.token.environments_scoped
    assert new.token.expires_at is not None and (new.token.expires_at - new.token.created_at).days == 30
    old.token.refresh_from_db()
    assert old.token.revoked_by == admin_user
    assert old.token.name == f"payments deploy (rotated, was {old.token.prefix}…)"


def test_a_token_whose_scope_was_deleted_stays_scoped_to_nothing_when_rotated(admin_user, pipeline):
    service = make_ci("payments-api")
    old = api_token_create(actor=admin_user, owner=pipeline, name="ci", services=[service])
    service.delete()
    new = api_token_rotate(actor=admin_user, token=old.token)
    new.token.refresh_from_db()
    assert new.token.services_scoped and not new.token.services.exists()  # acts for no service, not for all


def test_rotation_is_one_transaction_a_failed_issue_leaves_the_old_token_working(admin_user, pipeline, monkeypatch):
    old = api_token_create(actor=admin_user, owner=pipeline, name="ci")

    def refuse(**kwargs):
        raise InvalidInput("no", field="name")

    monkeypatch.setattr(services, "api_token_create", refuse)
    with pytest.raises(InvalidInput):
        api_token_rotate(actor=admin_user, token=old.token)
    old.token.refresh_from_db()
    assert old.token.name == "ci" and api_token_authenticate(old.secret) is not None


def test_nobody_rotates_a_revoked_token_or_another_persons(admin_user, pipeline, requester, cab_member):
    theirs = api_token_create(actor=cab_member, owner=cab_member, name="laptop")
    with pytest.raises(Forbidden):
        api_token_rotate(actor=requester, token=theirs.token)
    with pytest.raises(Forbidden, match="not a service account"):  # an admin manages it, but may not act as her
        api_token_rotate(actor=admin_user, token=theirs.token)
    assert api_token_authenticate(theirs.secret) is not None
    revoked = api_token_create(actor=admin_user, owner=pipeline, name="old")
    api_token_revoke(actor=admin_user, token=revoked.token)
    with pytest.raises(Conflict, match="revoked"):
        api_token_rotate(actor=admin_user, token=revoked.token)


def test_the_rotate_page_confirms_then_shows_the_new_secret_once(client, admin_user, pipeline):
    old = api_token_create(actor=admin_user, owner=pipeline, name="payments deploy")
    client.force_login(admin_user)
    url = reverse("token_rotate", args=[old.token.pk])
    confirm = html.unescape(client.get(url).content.decode())
    assert "Rotate the token “payments deploy”?" in confirm and "Rotate “payments deploy”" in confirm
    assert api_token_authenticate(old.secret) is not None  # asking changes nothing
    response = client.post(url)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert api_token_authenticate(secret_on(response)).user == pipeline
    assert api_token_authenticate(old.secret) is None


def test_revoking_asks_for_confirmation_first(client, requester):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    client.force_login(requester)
    listed = client.get(reverse("token_list")).content.decode()
    assert f'href="{reverse("token_revoke", args=[issued.token.pk])}">Revoke…</a>' in listed
    assert 'method="post" action="/tokens/' not in listed  # no one-click revoke
    confirm = html.unescape(client.get(reverse("token_revoke", args=[issued.token.pk])).content.decode())
    assert "Revoke the token “laptop”?" in confirm and "cannot be undone" in confirm
    assert api_token_authenticate(issued.secret) is not None
    response = client.post(reverse("token_revoke", args=[issued.token.pk]))
    assert response.status_code == 302 and api_token_authenticate(issued.secret) is None


def test_an_admin_revokes_a_service_accounts_token_but_sees_no_other_persons(client, admin_user, pipeline,
                                                                            requester):
    ci_token = api_token_create(actor=admin_user, owner=pipeline, name="ci")
    laptop = api_token_create(actor=requester, owner=requester, name="laptop")
    client.force_login(admin_user)
    listed = client.get(reverse("token_list")).content.decode()
    assert f'data-token="{ci_token.token.pk}"' in listed and f'data-token="{laptop.token.pk}"' not in listed
    assert client.get(reverse("token_revoke", args=[laptop.token.pk])).status_code == 404
    client.post(reverse("token_revoke", args=[ci_token.token.pk]))
    assert api_token_authenticate(ci_token.secret) is None


def test_each_environment_checkbox_sits_inside_its_label(client, requester):
    make_environment("staging", 2)
    prod = make_environment("prod", 3, is_production=True)
    client.force_login(requester)
    body = client.get(reverse("token_list")).content.decode()
    scope = body.split('<fieldset class="checks"', 1)[1].split("</fieldset>", 1)[0]
    assert "<legend>Only for these environments</legend>" in scope
    assert (f'<label class="inline" for="id_environments_1"><input type="checkbox" name="environments" '
            f'value="{prod.pk}" id="id_environments_1"> prod</label>') in scope
