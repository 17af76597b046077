"""Gate policies are set in the admin by administrators; the answers sent to GitHub are a record only."""

import pytest

from governance.models import GitHubReview
from governance.roles import Role
from releases.models import GatePolicy
from tests.factories import make_environment, make_user, sealed

pytestmark = pytest.mark.django_db
POLICIES = "/admin/releases/gatepolicy/"


def test_an_administrator_sets_an_environments_gate_policy_and_the_ledger_records_it(client):
    staging = make_environment("staging", 1)
    assert not GatePolicy.for_environment(staging).require_signature  # the default outside production
    client.force_login(make_user("adam", Role.ADMIN, is_staff=True))
    response = client.post(POLICIES + "add/", {"environment": staging.pk, "require_signature": "on",
                                               "required_scans": "sast,dependency", "block_failed_scans": "on",
                                               "max_critical": "0", "max_high": "", "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    staging.refresh_from_db()
    policy = GatePolicy.for_environment(staging)
    assert (policy.require_signature, policy.required_scans, policy.max_critical) == (True, ["sast", "dependency"], 0)
    [created] = sealed(object_type="releases.gatepolicy", action="create")
    assert created.actor_name == "adam"


def test_an_unknown_scan_kind_is_refused_on_its_field(client):
    staging = make_environment("staging", 1)
    client.force_login(make_user("adam", Role.ADMIN, is_staff=True))
    response = client.post(POLICIES + "add/", {"environment": staging.pk, "required_scans": "pentest",
                                               "block_failed_scans": "on", "_save": "Save"})
    assert response.status_code == 200 and "required_scans" in response.context["adminform"].form.errors
    assert not GatePolicy.objects.exists()


@pytest.mark.parametrize("role", [Role.RELEASE_MANAGER, Role.SERVICE_ACCOUNT])
def test_staff_who_are_not_administrators_cannot_change_a_policy(client, role):
    staging = make_environment("staging", 1)
    client.force_login(make_user("sam", role, is_staff=True))
    response = client.post(POLICIES + "add/", {"environment": staging.pk, "block_failed_scans": "on",
                                               "_save": "Save"})
    assert response.status_code == 403 and not GatePolicy.objects.exists()


def test_github_reviews_cannot_be_edited_in_the_admin(client):
    review = GitHubReview.objects.create(delivery="d-1", repository="octo/app", environment_name="prod",
                                         installation_id=1, callback_url="https://api.github.com/x",
                                         state="rejected", comment="no")
    client.force_login(make_user("adam", Role.ADMIN, is_staff=True))
    url = f"/admin/governance/githubreview/{review.pk}/change/"
    assert client.get(url).status_code == 200
    client.post(url, {"state": "approved"})
    review.refresh_from_db()
    assert review.state == "rejected"
