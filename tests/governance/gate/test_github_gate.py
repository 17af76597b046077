"""GitHub's custom deployment protection rule: webhooks shaped as GitHub's schema declares them, signed with the
webhook secret, and a local HTTP server standing in for GitHub's API that records the review call Changeboard makes
(tests/governance/gate/github_world.py)."""

import json
import threading
import time
import uuid
from datetime import timedelta
from unittest import TestCase

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from governance.gate.github import github_review_send, reviews_unanswered
from governance.gate.services import deployment_abandon
from governance.gate.tasks import github_reviews_resend
from governance.models import AuditCapture, ChangeStatus, DeploymentCheck, GitHubReview
from governance.roles import Role
from releases.models import Deployment
from tests.factories import make_ci, make_user, sealed
from tests.governance.gate.gate_world import DIGEST
from tests.governance.gate.github_world import (
    DEPLOYMENT,
    DEPLOYMENT_FIELDS,
    PROTECTION_RULE_FIELDS,
    RUN,
    SHA,
    WEBHOOK,
    answer,
    deliver,
    deployment_object,
    payload,
)


def github_ready(world) -> dict:
    """The gate's world as the GitHub App meets it: its service account, the service's repository, the build's
    commit."""
    make_user("github", Role.SERVICE_ACCOUNT)
    world["service"].github_repository = "octo-bank/payments-api"
    world["service"].save()
    world["artifact"].source_commit = SHA
    world["artifact"].save()
    return world


@pytest.fixture
def gated(db, github, world):
    return github_ready(world)


def test_an_allowed_deployment_is_approved_through_the_runs_review_call(gated, github,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = deliver(payload(github))
    assert len(queued) == 1  # the answer goes out after the webhook is acknowledged
    review = answer(response)
    [token_call, review_call] = github.requests
    assert token_call["path"] == "/app/installations/51230447/access_tokens"
    assert review_call["path"] == f"/repos/octo-bank/payments-api/actions/runs/{RUN}/deployment_protection_rule"
    assert review_call["body"]["environment_name"] == "prod" and review_call["body"]["state"] == "approved"
    assert gated["change"].number in review_call["body"]["comment"] and DIGEST in review_call["body"]["comment"]
    assert review_call["headers"]["x-github-api-version"] == "2022-11-28"
    assert review.answered_at is not None and review.attempts == 1
    check = DeploymentCheck.objects.get(pk=review.gate_check_id)
    assert (check.decision, check.change, check.asked_by.username) == ("allow", gated["change"], "github")


def test_a_denied_deployment_is_rejected_with_every_reason_as_the_comment(gated, github):
    gated["change"].status = ChangeStatus.CAB_REVIEW
    gated["change"].save()
    gated["artifact"].signature_status = "invalid"
    gated["artifact"].save()
    review = answer(deliver(payload(github)))
    [review_call] = github.reviews()
    assert review_call["body"]["state"] == "rejected" and review.state == "rejected"
    comment = review_call["body"]["comment"]
    # The change was not in review, so no change covers it now; and the build's signature is bad.
    assert "No approved change covers payments-api in prod now." in comment
    assert "takes signed builds only" in comment and len(comment) <= 1024


def test_the_deliveries_of_these_tests_hold_only_what_githubs_schema_declares(github):
    body = payload(github)
    assert set(body) <= PROTECTION_RULE_FIELDS and set(body["deployment"]) <= DEPLOYMENT_FIELDS
    assert body["deployment"]["sha"] == SHA and body["deployment"]["payload"] == {}  # as GitHub Actions creates it


def test_the_deployment_payload_may_name_the_change(gated, github):
    """A deployment a workflow creates through GitHub's API may carry a payload; GitHub Actions' carry none."""
    gated["change"].planned_start, gated["change"].planned_end = None, None
    gated["change"].save()
    review = answer(deliver(payload(github, deployment=deployment_object(payload={"change": gated["change"].number}))))
    check = DeploymentCheck.objects.get(pk=review.gate_check_id)
    assert check.change == gated["change"] and [r["code"] for r in check.reasons] == ["outside_window"]


def test_a_build_changeboard_does_not_know_is_rejected(gated, github):
    review = answer(deliver(payload(github, deployment=deployment_object(sha="0" * 40))))
    assert review.state == "rejected" and f"No artifact commit {'0' * 40} is registered." in review.comment


def test_the_commit_is_the_deployments_not_an_undeclared_top_level_sha(gated, github):
    review = answer(deliver(payload(github, sha="0" * 40)))  # deployment.sha is the build's
    assert review.state == "approved" and review.sha == SHA


def test_a_delivery_whose_deployment_is_null_may_carry_the_commit_at_the_top(gated, github):
    review = answer(deliver(payload(github, deployment=None, sha=SHA)))
    assert (review.state, review.sha, review.deployment_id) == ("approved", SHA, None)


@pytest.mark.parametrize("deployment", [None, "without its sha"])
def test_a_delivery_that_names_no_commit_is_rejected_saying_what_is_missing(gated, github, deployment):
    if deployment is not None:
        deployment = {key: value for key, value in deployment_object().items() if key != "sha"}
    review = answer(deliver(payload(github, deployment=deployment)))
    [review_call] = github.reviews()
    assert review.state == review_call["body"]["state"] == "rejected" and review.gate_check_id is None
    assert "The delivery names no commit (deployment.sha is missing)" in review.comment
    assert "No artifact commit  is" not in review.comment


def test_an_unknown_repository_or_environment_is_rejected_not_ignored(gated, github):
    assert "No service in the CMDB" in answer(deliver(payload(github, repository="octo-bank/unknown"))).comment
    assert "no environment named moon" in answer(deliver(payload(github, environment="moon"))).comment
    assert [r["body"]["state"] for r in github.reviews()] == ["rejected", "rejected"]


@pytest.mark.parametrize("secret", [None, "not-the-secret"])
def test_a_webhook_without_the_right_signature_is_refused_and_recorded(gated, github, secret):
    body = payload(github)
    if secret is None:
        response = Client().post(WEBHOOK, body, content_type="application/json",
                                 headers={"X-GitHub-Event": "deployment_protection_rule", "X-GitHub-Delivery": "1"})
    else:
        response = deliver(body, secret=secret)
    assert response.status_code == 401
    assert not GitHubReview.objects.exists() and not DeploymentCheck.objects.exists() and not github.requests
    [refusal] = sealed(action="authentication_failed")
    assert refusal.context["path"] == WEBHOOK


def test_a_callback_url_elsewhere_is_refused_and_never_called(gated, github):
    response = deliver(payload(github, deployment_callback_url="http://169.254.169.254/latest/meta-data"))
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "deployment_callback_url"
    assert not GitHubReview.objects.exists() and not github.requests


@pytest.mark.parametrize(("body", "field"), [
    ({"installation": None}, "installation.id"), ({"environment": ""}, "environment"),
    ({"action": "created"}, "action"), ({"installation": {"id": "51230447"}}, "installation.id"),
])
def test_a_malformed_webhook_is_a_400_naming_the_field(gated, github, body, field):
    response = deliver(payload(github, **body))
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field
    assert not GitHubReview.objects.exists()


def test_a_redelivered_webhook_is_answered_once(gated, github):
    delivery = str(uuid.uuid4())
    first = deliver(payload(github), delivery=delivery)
    again = deliver(payload(github), delivery=delivery)
    assert again.json() == first.json()
    answer(first)
    github_review_send.apply(args=[GitHubReview.objects.get().pk])  # a second run finds it answered
    assert GitHubReview.objects.count() == 1 and DeploymentCheck.objects.count() == 1
    assert len(github.reviews()) == 1


def test_github_saying_nothing_is_pending_yet_is_retried_then_recorded(gated, github):
    github.review_statuses = [422]
    review = answer(deliver(payload(github)))
    assert (review.attempts, review.answered_at is not None, review.last_error) == (2, True, "")
    github.review_statuses = [422] * 10
    review = answer(deliver(payload(github)))
    assert review.answered_at is None and review.attempts == 6  # the first try and five retries
    assert review.last_error.startswith("HTTP 422")


def test_without_a_webhook_secret_every_webhook_is_refused_naming_the_setting_only_in_the_log(gated, github,
                                                                                                 settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    with TestCase().assertLogs("governance.gate.api.github", level="ERROR") as logged:
        response = deliver(payload(github), secret="")
    assert response.status_code == 503 and response.json()["errors"][0]["code"] == "not_configured"
    assert "GITHUB_WEBHOOK_SECRET" not in response.content.decode()  # the caller is no operator
    assert "GITHUB_WEBHOOK_SECRET is not set" in logged.output[0]
    assert not GitHubReview.objects.exists()


def test_ping_is_answered_and_other_events_ignored(gated, github):
    assert deliver({"zen": "Design for failure."}, event="ping").json() == {"pong": True}
    assert deliver({"action": "created"}, event="deployment").status_code == 202
    assert not GitHubReview.objects.exists()


# --- what ran: GitHub's deployment statuses ---------------------------------------------------------------------

def status_payload(github, state, *, deployment_id=DEPLOYMENT) -> dict:
    """A deployment_status webhook body as GitHub documents it."""
    base = payload(github)
    deployment = deployment_object(deployment_id)
    return {
        "action": "created",
        "deployment_status": {
            "url": f"{deployment['url']}/statuses/9001", "id": 9001, "node_id": "DES_kwDOAbc123", "state": state,
            "creator": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}, "description": "",
            "environment": "prod", "target_url": "", "log_url": f"https://github.com/octo-bank/payments-api/actions/"
                                                                f"runs/{RUN}/job/1",
            "created_at": "2026-11-27T08:30:00Z", "updated_at": "2026-11-27T08:30:00Z",
            "deployment_url": deployment["url"], "repository_url": deployment["repository_url"],
            "performed_via_github_app": None},
        "deployment": deployment,
        "workflow_run": {"id": RUN, "name": "Deploy", "head_sha": SHA, "status": "in_progress"},
        **{part: base[part] for part in ("repository", "organization", "installation", "sender")},
    }


def approved(github) -> GitHubReview:
    review = answer(deliver(payload(github, deployment=deployment_object())))
    assert review.state == "approved" and review.deployment_id == DEPLOYMENT
    return review


def report(github, state, **options):
    return deliver(status_payload(github, state, **options), event="deployment_status")


def test_github_reports_what_ran_under_an_approval_as_a_deployment(gated, github):
    review = approved(github)
    started = report(github, "in_progress")
    assert started.status_code == 202 and started.json()["status"] == "started"
    deployment = Deployment.objects.get()
    assert (deployment.check_id, deployment.artifact, deployment.change_number, deployment.reported_by.username) \
        == (review.gate_check_id, gated["artifact"], gated["change"].number, "github")
    assert report(github, "success").json() == {"deployment": deployment.number, "status": "succeeded"}
    assert report(github, "success").json()["status"] == "succeeded"  # redelivered: nothing more
    deployment.refresh_from_db()
    assert deployment.status == "succeeded" and deployment.finished_at is not None
    assert Deployment.objects.count() == 1


def test_an_outcome_reported_first_starts_and_ends_the_deployment(gated, github):
    approved(github)
    assert report(github, "queued").json()["ignored"]  # says nothing about what ran
    assert report(github, "error").json()["status"] == "failed"
    assert Deployment.objects.get().status == "failed"
    assert Deployment.objects.get().finished_at is not None


def test_statuses_of_deployments_changeboard_did_not_approve_record_nothing(gated, github):
    gated["change"].status = ChangeStatus.CAB_REVIEW
    gated["change"].save()
    assert answer(deliver(payload(github, deployment=deployment_object()))).state == "rejected"
    assert report(github, "in_progress").status_code == 202
    assert report(github, "success", deployment_id=DEPLOYMENT + 1).status_code == 202
    assert not Deployment.objects.exists()


def test_a_status_of_another_deployment_than_the_approved_one_records_nothing(gated, github):
    approved(github)
    response = report(github, "success", deployment_id=DEPLOYMENT + 1)
    assert response.status_code == 202 and "ignored" in response.json()
    assert not Deployment.objects.exists()


def test_github_ran_it_long_after_the_check_and_it_is_recorded_all_the_same(gated, github):
    """GitHub does not ask again: a runner queue or a second reviewer may start the job after the check's five
    minutes, and what ran is what the record must say."""
    review = approved(github)
    DeploymentCheck.objects.filter(pk=review.gate_check_id).update(valid_until=review.received_at)
    assert report(github, "in_progress").json()["status"] == "started"
    assert Deployment.objects.get().check_id == review.gate_check_id


def test_a_deployment_that_cannot_be_recorded_is_in_the_ledger_with_the_reason(gated, github, pipeline):
    review = approved(github)
    Deployment.objects.create(service=gated["service"], environment=gated["prod"], artifact=gated["artifact"],
                              check_id=uuid.uuid4(), reported_by=pipeline)  # a pipeline's, never ended
    response = report(github, "in_progress")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "environment_locked"
    assert Deployment.objects.count() == 1
    [event] = AuditCapture.objects.filter(action="github_deployment_unrecorded")
    assert (event.object_id, event.actor_name) == (str(review.gate_check_id), "github")
    assert event.context["deployment_id"] == DEPLOYMENT and "holds payments-api in prod" in event.context["reason"]


def test_a_status_of_another_repository_records_nothing(gated, github):
    approved(github)
    body = status_payload(github, "in_progress")
    body["repository"] = {**body["repository"], "full_name": "octo-bank/ledger-api", "name": "ledger-api"}
    assert deliver(body, event="deployment_status").json()["ignored"]
    assert not Deployment.objects.exists()


def test_a_pipeline_reporting_the_same_start_as_github_gets_the_one_deployment(gated, github, api):
    review = approved(github)
    client = api.as_user(User.objects.get(username="github"))
    reported = client.post("/api/v1/deployments/", {"check_id": str(review.gate_check_id), "status": "started"},
                           format="json")
    assert reported.status_code == 201, reported.content
    assert report(github, "in_progress").json() == {"deployment": reported.json()["number"], "status": "started"}
    again = client.post("/api/v1/deployments/", {"check_id": str(review.gate_check_id), "status": "started"},
                        format="json")
    assert again.json()["number"] == reported.json()["number"]
    assert report(github, "success").json() == {"deployment": reported.json()["number"], "status": "succeeded"}
    assert Deployment.objects.count() == 1


@pytest.mark.parametrize(("broken", "field"), [
    ({"deployment": None}, "deployment.id"), ({"deployment": {"id": "1"}}, "deployment.id"),
    ({"deployment_status": {}}, "deployment_status.state"), ({"repository": {}}, "repository.full_name"),
])
def test_a_malformed_deployment_status_is_a_400_naming_the_field(gated, github, broken, field):
    response = deliver({**status_payload(github, "success"), **broken}, event="deployment_status")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


def wait_until(condition, seconds=20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_review(github, migration_data, celery_worker_process, world):
    github_ready(world)
    assert deliver(payload(github)).status_code == 202
    wait_until(github.reviews)
    [review_call] = github.reviews()
    assert review_call["body"]["state"] == "approved"
    wait_until(lambda: not GitHubReview.objects.filter(answered_at__isnull=True).exists(), seconds=5)
    assert GitHubReview.objects.get().answered_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_periodic_resend_answers_a_review_its_tries_left_owed(github, migration_data, celery_worker_process,
                                                                   world):
    github_ready(world)
    github.review_statuses = [422] * 6  # the first try and its five retries: nothing pending yet
    assert deliver(payload(github)).status_code == 202
    assert wait_until(lambda: GitHubReview.objects.filter(attempts=6).exists())
    GitHubReview.objects.update(received_at=timezone.now() - timedelta(minutes=2))
    assert github_reviews_resend.apply().get() == 1  # beat's task, run here; the send goes to the worker
    assert wait_until(lambda: GitHubReview.objects.filter(answered_at__isnull=False).exists())
    review = GitHubReview.objects.get()
    assert review.attempts == 7 and review.last_error == ""
    assert [call["body"]["state"] for call in github.reviews()] == ["approved"] * 7


def test_a_repository_of_several_services_tells_them_apart_by_the_github_environment_each_maps(gated, github):
    other = make_ci("payments-batch", team=gated["team"], github_repository="octo-bank/payments-api",
                    github_environments={"batch-prod": "prod"})
    ambiguous = answer(deliver(payload(github)))
    assert ambiguous.state == "rejected" and ambiguous.gate_check_id is None
    assert ("Several services have the GitHub repository octo-bank/payments-api (payments-api, payments-batch) and "
            "none maps the GitHub environment prod") in ambiguous.comment
    gated["service"].github_environments = {"API-Prod": "prod"}
    gated["service"].save()
    mapped = answer(deliver(payload(github, environment="api-prod")))  # GitHub's environment names ignore case
    assert mapped.state == "approved"
    check = DeploymentCheck.objects.get(pk=mapped.gate_check_id)
    assert (check.service, check.environment) == (gated["service"], gated["prod"])
    batch = answer(deliver(payload(github, environment="batch-prod")))
    assert DeploymentCheck.objects.get(pk=batch.gate_check_id).service == other and batch.state == "rejected"


def test_a_github_environment_two_services_map_is_rejected_naming_both(gated, github):
    gated["service"].github_environments = {"prod": "prod"}
    gated["service"].save()
    make_ci("payments-batch", team=gated["team"], github_repository="octo-bank/payments-api",
            github_environments={"PROD": "prod"})
    review = answer(deliver(payload(github)))
    assert review.state == "rejected" and review.gate_check_id is None
    assert "map the GitHub environment prod (payments-api, payments-batch)" in review.comment


def test_a_deployment_created_through_the_api_may_name_its_service_in_the_payload(gated, github):
    make_ci("payments-batch", team=gated["team"], github_repository="octo-bank/payments-api")
    named = answer(deliver(payload(github, deployment=deployment_object(payload={"service": "payments-api"}))))
    assert named.state == "approved"
    assert DeploymentCheck.objects.get(pk=named.gate_check_id).service == gated["service"]


def test_a_signature_that_is_not_hex_is_refused_not_a_crash(gated, github):
    response = Client().post(WEBHOOK, json.dumps(payload(github)), content_type="application/json", headers={
        "X-GitHub-Event": "deployment_protection_rule", "X-GitHub-Delivery": "x",
        "X-Hub-Signature-256": "sha256=\u00e9\u00e9"})
    assert response.status_code == 401
    assert not GitHubReview.objects.exists()


def test_an_environment_name_too_long_for_changeboard_is_a_400(gated, github):
    response = deliver(payload(github, environment="e" * 150))
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "environment"


def test_a_callback_url_with_more_than_a_run_id_is_refused(gated, github):
    body = payload(github)
    body["deployment_callback_url"] = body["deployment_callback_url"].replace(f"/runs/{RUN}/", f"/runs/{RUN}/../../x/")
    response = deliver(body)
    assert response.status_code == 400 and not github.requests
    assert response.json()["errors"][0]["field"] == "deployment_callback_url"
    assert not GitHubReview.objects.exists() and not DeploymentCheck.objects.exists()


def test_github_unreachable_is_recorded_and_tried_again_later(gated, github, settings):
    response = deliver(payload(github))
    github.server.shutdown()
    github.server.server_close()
    review = answer(response)
    assert review.answered_at is None and review.attempts == 6 and "unreachable" in review.last_error
    [owed] = reviews_unanswered(review.received_at + timedelta(minutes=5))
    assert owed == review
    assert not reviews_unanswered(review.received_at)  # its first try's minute is not up: not resent yet


def test_a_redirect_from_github_is_not_followed_with_the_token(gated, github):
    github.review_statuses = [302] * 6
    review = answer(deliver(payload(github)))
    assert review.answered_at is None and review.last_error.startswith("HTTP 302")
    assert not [r for r in github.requests if r["path"] == "/elsewhere"]


def both_waiting() -> None:
    """Until two requests wait on the lock this test holds, so that they truly meet."""
    with connection.cursor() as cursor:
        for _ in range(200):
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction the view would stand still
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            if cursor.fetchone()[0] == 2:
                return
            time.sleep(0.05)
    pytest.fail("the two requests never both waited on the lock")


@pytest.mark.django_db(transaction=True)
def test_the_same_delivery_arriving_twice_at_once_is_decided_once(github, migration_data, world):
    github_ready(world)
    body, delivery = payload(github), str(uuid.uuid4())
    answers = []

    def post():
        answers.append(deliver(body, delivery=delivery).status_code)
        connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(2)]
    with connection.cursor() as cursor:  # both deliveries queue on the delivery's lock, then go one by one
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"github-delivery:{delivery}"])
        for thread in threads:
            thread.start()
        both_waiting()
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"github-delivery:{delivery}"])
    for thread in threads:
        thread.join()
    assert answers == [202, 202]
    assert GitHubReview.objects.count() == 1 and DeploymentCheck.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_statuses_of_one_deployment_arriving_at_once_record_it_once(github, migration_data, world):
    github_ready(world)
    review = approved(github)
    answers = []

    def post(state):
        answers.append(report(github, state).status_code)
        connections.close_all()

    threads = [threading.Thread(target=post, args=(state,)) for state in ("in_progress", "success")]
    with transaction.atomic():  # both statuses queue on the review's row, then go one by one
        GitHubReview.objects.select_for_update().get(pk=review.pk)
        for thread in threads:
            thread.start()
        both_waiting()
    for thread in threads:
        thread.join()
    assert answers == [202, 202]
    assert Deployment.objects.get().status == "succeeded"  # whichever came first, the outcome stands



def test_news_of_a_deployment_ended_by_hand_is_kept_in_the_ledger(gated, github, release_manager):
    approved(github)
    report(github, "in_progress")
    deployment_abandon(actor=release_manager, deployment=Deployment.objects.get(), reason="No news for a day.")
    assert report(github, "success").json()["status"] == "abandoned"
    [event] = AuditCapture.objects.filter(action="deployment_outcome_after_abandon")
    assert event.context == {"state": "success"}


@pytest.mark.django_db(transaction=True)
def test_the_pipeline_and_github_reporting_one_start_together_get_one_deployment(github, migration_data, world,
                                                                                 api):
    github_ready(world)
    review = approved(github)
    client = api.as_user(User.objects.get(username="github"))
    barrier, answers, numbers = threading.Barrier(2), [], []

    def pipeline_reports():
        barrier.wait()
        response = client.post("/api/v1/deployments/", {"check_id": str(review.gate_check_id), "status": "started"},
                               format="json")
        answers.append(response.status_code)
        numbers.append(response.json()["number"])
        connections.close_all()

    def github_reports():
        barrier.wait()
        response = report(github, "in_progress")
        answers.append(response.status_code)
        numbers.append(response.json()["deployment"])
        connections.close_all()

    threads = [threading.Thread(target=pipeline_reports), threading.Thread(target=github_reports)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) in ([200, 202], [201, 202])
    assert Deployment.objects.count() == 1
    assert set(numbers) == {Deployment.objects.get().number}
    assert not AuditCapture.objects.filter(action="github_deployment_unrecorded").exists()
