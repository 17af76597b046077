import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from governance.access.services import api_token_authenticate, api_token_create, api_token_revoke, api_token_scope_set
from governance.core.errors import Forbidden, InvalidInput
from governance.core.secrets import secret_draw
from governance.models import ApiToken
from tests.factories import make_ci, make_environment, make_user
from tests.governance.races import posted_during_a_twin

pytestmark = pytest.mark.django_db

CIS_URL = "/api/v1/cis/"


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_only_the_hash_of_a_token_is_stored(requester):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    stored = ApiToken.objects.get(pk=issued.token.pk)
    assert stored.digest == hashlib.sha256(issued.secret.encode()).hexdigest()
    row = ApiToken.objects.filter(pk=stored.pk).values_list(*[f.attname for f in ApiToken._meta.concrete_fields])
    assert all(issued.secret not in str(value) for value in row[0])
    assert issued.secret.startswith(stored.prefix)


def test_a_token_authenticates_its_owner_on_the_api(requester):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    response = bearer(issued.secret).get(CIS_URL)
    assert response.status_code == 200


def test_an_unknown_token_is_refused_with_401(requester):
    response = bearer("cbt_not-a-real-token").get(CIS_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["code"] == "authentication_failed"


def test_a_malformed_authorization_header_is_a_401_not_a_500(requester):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    assert client.get(CIS_URL).status_code == 401


def test_an_expired_token_no_longer_authenticates(requester):
    issued = api_token_create(actor=requester, owner=requester, name="short", expires_days=1)
    assert bearer(issued.secret).get(CIS_URL).status_code == 200
    now = timezone.now()
    ApiToken.objects.filter(pk=issued.token.pk).update(
        created_at=now - timedelta(days=2), expires_at=now - timedelta(seconds=1)
    )
    assert bearer(issued.secret).get(CIS_URL).status_code == 401


def test_a_revoked_token_no_longer_authenticates(requester):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    api_token_revoke(actor=requester, token=issued.token)
    assert bearer(issued.secret).get(CIS_URL).status_code == 401
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_by == requester


def test_a_deactivated_user_cannot_use_their_token(requester):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    requester.is_active = False
    requester.save()
    assert bearer(issued.secret).get(CIS_URL).status_code == 401


def test_use_records_the_last_used_time(requester):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    assert issued.token.last_used_at is None
    bearer(issued.secret).get(CIS_URL)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is not None


def test_nobody_revokes_another_users_token(requester, cab_member):
    issued = api_token_create(actor=requester, owner=requester, name="laptop")
    with pytest.raises(Forbidden):
        api_token_revoke(actor=cab_member, token=issued.token)
    assert api_token_authenticate(issued.secret) is not None


def test_only_an_admin_issues_tokens_for_someone_else_and_only_for_a_service_account(requester, cab_member,
                                                                                      admin_user, pipeline):
    with pytest.raises(Forbidden):
        api_token_create(actor=cab_member, owner=pipeline, name="sneaky")
    assert api_token_create(actor=admin_user, owner=pipeline, name="pipeline").token.user == pipeline
    with pytest.raises(Forbidden) as refused:  # a person's token would let the admin act, and approve, as them
        api_token_create(actor=admin_user, owner=requester, name="pipeline")
    assert refused.value.field == "owner"


@pytest.mark.parametrize(("name", "days", "field"), [("", None, "name"), ("ok", 0, "expires_days")])
def test_bad_token_input_names_the_field(requester, name, days, field):
    with pytest.raises(InvalidInput) as error:
        api_token_create(actor=requester, owner=requester, name=name, expires_days=days)
    assert error.value.field == field
    assert not ApiToken.objects.exists()


def test_token_names_are_unique_per_owner(requester):
    api_token_create(actor=requester, owner=requester, name="laptop")
    with pytest.raises(InvalidInput) as error:
        api_token_create(actor=requester, owner=requester, name="laptop")
    assert error.value.field == "name"


def test_the_command_prints_the_token_alone_on_its_last_line(requester):
    out = StringIO()
    call_command("create_api_token", "requester", "--name", "ci", "--expires-days", "30", stdout=out, stderr=StringIO())
    secret = out.getvalue().strip().splitlines()[-1]
    token = api_token_authenticate(secret)
    assert token is not None and token.name == "ci" and token.user == requester
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)


def test_the_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "ghost", stdout=StringIO())


def test_the_tokens_page_shows_a_new_secret_once(client, requester):
    client.force_login(requester)
    response = client.post(reverse("token_list"), {"name": "laptop", "expires_days": "7"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=requester)
    page = response.content.decode()
    secret = page.split('id="new-token">', 1)[1].split("</pre>", 1)[0]
    assert api_token_authenticate(secret).pk == token.pk
    assert response["Cache-Control"] == "no-store"
    assert secret not in client.get(reverse("token_list")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_double_submit_of_the_tokens_page_is_refused_on_the_name_like_the_feeds_page(migration_data, client,
                                                                                       requester):
    client.force_login(requester)
    drawn = secret_draw("cbt_")
    response = posted_during_a_twin(client, reverse("token_list"), {"name": "laptop"}, lambda: ApiToken.objects.create(
        user=requester, name="laptop", prefix=drawn.prefix, digest=drawn.digest))
    assert response.status_code == 200
    assert "already has a token named &#x27;laptop&#x27;" in response.content.decode()
    assert 'id="new-token"' not in response.content.decode()
    assert ApiToken.objects.filter(user=requester).count() == 1


def test_the_tokens_page_revokes_only_the_users_own_tokens(client, requester, cab_member):
    theirs = api_token_create(actor=cab_member, owner=cab_member, name="laptop")
    client.force_login(requester)
    assert client.post(reverse("token_revoke", args=[theirs.token.pk])).status_code == 404
    assert api_token_authenticate(theirs.secret) is not None
    mine = api_token_create(actor=requester, owner=requester, name="laptop")
    client.post(reverse("token_revoke", args=[mine.token.pk]))
    assert api_token_authenticate(mine.secret) is None


def test_the_tokens_page_needs_a_login(client):
    response = client.get(reverse("token_list"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_tokens_page_keeps_a_fixed_number_of_queries(client, requester, django_assert_max_num_queries):
    client.force_login(requester)
    api_token_create(actor=requester, owner=requester, name="first")
    client.get(reverse("token_list"))  # warm the session and permission caches of this client
    with django_assert_max_num_queries(9) as few:
        client.get(reverse("token_list"))
    for n in range(20):
        api_token_create(actor=requester, owner=requester, name=f"token {n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(reverse("token_list")).status_code == 200


def test_the_tokens_page_issues_a_token_scoped_to_services_and_environments(client, requester):
    prod = make_environment("prod", 3, is_production=True)
    make_environment("staging", 2)
    service = make_ci("payments-api")
    client.force_login(requester)
    response = client.post(reverse("token_list"), {"name": "deploy", "services": "Payments-API",
                                                   "environments": [prod.pk]})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=requester)
    assert list(token.services.all()) == [service] and list(token.environments.all()) == [prod]
    assert '<span class="tag">payments-api</span>' in response.content.decode()


def test_an_unknown_service_in_the_scope_is_refused_on_its_field_and_no_token_made(client, requester):
    client.force_login(requester)
    response = client.post(reverse("token_list"), {"name": "deploy", "services": "no-such-service"})
    assert "no-such-service" in str(response.context["form"].errors["services"])
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("secret", ["plain-secret-without-the-prefix-0123456789abcdef", "cbt_short"])
def test_a_chosen_secret_must_look_like_a_token(requester, secret):
    with pytest.raises(InvalidInput) as error:
        api_token_create(actor=requester, owner=requester, name="demo", secret=secret)
    assert error.value.field == "secret" and not ApiToken.objects.exists()


def test_nobody_changes_the_scope_of_another_users_token(requester, cab_member, admin_user):
    issued = api_token_create(actor=requester, owner=requester, name="ci", services=[make_ci("payments-api")])
    with pytest.raises(Forbidden):
        api_token_scope_set(actor=cab_member, token=issued.token, services=[], environments=[])
    issued.token.refresh_from_db()
    assert issued.token.services_scoped and issued.token.services.count() == 1
    api_token_scope_set(actor=admin_user, token=issued.token, services=[], environments=[])
    issued.token.refresh_from_db()
    assert not issued.token.services_scoped and not issued.token.services.exists()  # back to any service


def test_the_admin_revokes_each_selected_token_its_user_may_manage_and_says_which_it_may_not(client, pipeline):
    clerk = make_user("clerk")
    clerk.is_staff = True
    clerk.save()
    clerk.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    own = api_token_create(actor=clerk, owner=clerk, name="mine").token
    others = api_token_create(actor=pipeline, owner=pipeline, name="ci").token
    client.force_login(clerk)
    response = client.post("/admin/governance/apitoken/", {"action": "revoke", "index": 0,
                                                            "_selected_action": [own.pk, others.pk]}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert shown == [f"{others}: You may only revoke your own tokens.", "1 token(s) revoked."]
    own.refresh_from_db()
    others.refresh_from_db()
    assert own.revoked_at is not None and others.revoked_at is None
