"""GitHub's custom deployment protection rules: a GitHub environment asks Changeboard, as a GitHub App, whether a
job may deploy; the gate decides and the answer goes back through the run's review call. The statuses of the
deployment GitHub then runs are recorded as what ran."""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.audit.ledger import audit_record
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, InvalidInput
from governance.core.inputs import json_parsed
from governance.gate.services import (
    Question,
    change_for_deployment,
    deployment_check,
    deployment_finish,
    deployment_observed,
)
from governance.models import ChangeRequest
from governance.models.gate import GateDecision, GitHubReview
from releases.models import Artifact, Deployment, DeploymentStatus

COMMENT_LIMIT = 1024  # GitHub truncates review comments beyond this
REVIEW_TIMEOUT = 10  # seconds for each call to GitHub
API_VERSION = "2022-11-28"


def signature_valid(body: bytes, header: str, secret: str) -> bool:
    """X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>."""
    if not secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").encode(errors="replace"))


@dataclass(frozen=True)
class ProtectionRuleRequest:
    delivery: str
    repository: str
    environment: str
    sha: str
    callback_url: str
    installation_id: int
    change_number: str
    service_name: str
    deployment_id: int | None = None

    @classmethod
    def parse(cls, delivery: str, payload) -> "ProtectionRuleRequest":
        if not isinstance(payload, dict):
            raise InvalidInput("The webhook body must be a JSON object.")
        if payload.get("action") != "requested":
            raise InvalidInput("Only requested protection rules are answered.", field="action")
        repository, installation = _member(payload, "repository").get("full_name"), _member(payload, "installation")
        given: dict[str, Any] = {"repository.full_name": repository, "environment": payload.get("environment"),
                                 "deployment_callback_url": payload.get("deployment_callback_url"),
                                 "installation.id": installation.get("id")}
        for field, value in given.items():
            if value in (None, ""):
                raise InvalidInput(f"{field} is missing.", field=field)
        if not _is_id(given["installation.id"]):
            raise InvalidInput("installation.id must be a number.", field="installation.id")
        repository = _text("repository.full_name", repository, 200)
        environment = _text("environment", given["environment"], 100)
        deployment = _member(payload, "deployment")
        sha = _commit(payload, deployment)
        # Only ever call GitHub back about a run of this repository, at a URL built here: the one given could
        # point anywhere.
        prefix = f"{settings.GITHUB_API_URL}/repos/{repository}/actions/runs/"
        callback = str(given["deployment_callback_url"])
        run = callback.removeprefix(prefix).removesuffix("/deployment_protection_rule")
        if not (run.isascii() and run.isdigit() and callback == f"{prefix}{run}/deployment_protection_rule"):
            raise InvalidInput(f"deployment_callback_url must be a run of {repository} on {settings.GITHUB_API_URL}.",
                               field="deployment_callback_url")
        named = _deployment_payload(deployment)
        return cls(delivery=delivery, repository=repository, environment=environment,
                   sha=sha, callback_url=f"{prefix}{int(run)}/deployment_protection_rule",
                   installation_id=given["installation.id"], change_number=named.get("change", ""),
                   service_name=named.get("service", ""),
                   deployment_id=deployment["id"] if _is_id(deployment.get("id")) else None)


def _commit(payload: dict, deployment: dict) -> str:
    """The commit the job would deploy: `deployment.sha`, as GitHub's schema of the webhook declares it. A delivery
    whose deployment is null may still carry the commit as a top-level `sha`, which the schema does not declare:
    taken only then. "" when the delivery names none."""
    if deployment.get("sha") not in (None, ""):
        return _text("deployment.sha", deployment["sha"], 64)
    return _text("sha", payload.get("sha") or "", 64)


def _member(payload: dict, name: str) -> dict[str, Any]:
    """The JSON object `payload` holds under `name`; an empty one when that is missing or not an object."""
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 63


def _text(field: str, value: object, longest: int) -> str:
    if not isinstance(value, str) or len(value) > longest:
        raise InvalidInput(f"{field} must be text of at most {longest} characters.", field=field)
    return value


@dataclass(frozen=True)
class DeploymentStatusReport:
    """A deployment_status webhook: how a deployment GitHub runs is going."""

    repository: str
    deployment_id: int
    state: str

    @classmethod
    def parse(cls, payload) -> "DeploymentStatusReport":
        if not isinstance(payload, dict):
            raise InvalidInput("The webhook body must be a JSON object.")
        parts = {name: _member(payload, name) for name in ("repository", "deployment", "deployment_status")}
        repository, state = parts["repository"].get("full_name"), parts["deployment_status"].get("state")
        if not repository:
            raise InvalidInput("repository.full_name is missing.", field="repository.full_name")
        repository = _text("repository.full_name", repository, 200)
        if not _is_id(parts["deployment"].get("id")):
            raise InvalidInput("deployment.id must be a number.", field="deployment.id")
        if not isinstance(state, str) or not state:
            raise InvalidInput("deployment_status.state is missing.", field="deployment_status.state")
        return cls(repository=repository, deployment_id=parts["deployment"]["id"], state=state)


def _deployment_payload(deployment: dict) -> dict[str, str]:
    """A workflow may name its change and service in the deployment's payload:
    {"change": "CHG0000123", "service": "payments-api"}."""
    payload = deployment.get("payload")
    if isinstance(payload, str):
        try:
            payload = json_parsed(payload)
        except ValueError:  # JSONRefused too: a payload nested too deep or holding no storable text
            return {}
    if not isinstance(payload, dict):
        return {}
    return {key: payload[key][:200] for key in ("change", "service") if isinstance(payload.get(key), str)}


def gate_account():
    """The service account the GitHub App acts as in Changeboard."""
    account = get_user_model().objects.filter(username=settings.GITHUB_GATE_ACCOUNT, is_active=True).first()
    if account is None:
        raise Conflict(f"The GitHub gate account {settings.GITHUB_GATE_ACCOUNT!r} does not exist.",
                       code="not_configured")
    return account


def _rejection(reasons: list[str]) -> tuple[str, str]:
    return GitHubReview.State.REJECTED, _comment("Changeboard denies this deployment", reasons)


def _comment(headline: str, lines: list[str]) -> str:
    text = "\n".join([f"{headline}.", *(f"- {line}" for line in lines)])
    return text if len(text) <= COMMENT_LIMIT else text[:COMMENT_LIMIT - 1] + "…"


def protection_rule_review(*, actor: ActingUser, request: ProtectionRuleRequest) -> GitHubReview:
    """Decide once per delivery and queue the review for GitHub; a redelivered webhook gets the same review, queued
    again while it is still owed."""
    with transaction.atomic():
        with connection.cursor() as cursor:  # the same delivery twice at once: the second waits, then finds it
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"github-delivery:{request.delivery}"])
        review = (GitHubReview.objects.filter(delivery=request.delivery).first()
                  or _review_decided(actor=actor, request=request))
        if review.answered_at is None:
            # robust: with the broker down the webhook is still acknowledged; the periodic resend answers
            transaction.on_commit(lambda: github_review_send.delay(review.pk), robust=True)
    return review


# The CIs of one repository read for a delivery, by name: a monorepo's services are a few dozen at most.
MAX_SERVICES_PER_REPOSITORY = 200


def _deployment_target(request: ProtectionRuleRequest) -> tuple[ConfigurationItem, Environment] | str:
    """The service and the Changeboard environment a job deploys to, or why they cannot be told. The service is a
    CI with the delivery's repository: the one that maps the job's GitHub environment (`github_environments`), or
    else the repository's only CI (or the one the deployment payload names), for the Changeboard environment of
    the GitHub environment's own name. GitHub Actions names nothing else a workflow chose: the deployment it
    creates for `jobs.<id>.environment` has an empty payload."""
    candidates = list(ConfigurationItem.objects.filter(github_repository__iexact=request.repository)
                      .order_by("name")[:MAX_SERVICES_PER_REPOSITORY])
    if request.service_name:
        candidates = [ci for ci in candidates if ci.name.lower() == request.service_name.lower()]
    if not candidates:
        named = f" named {request.service_name}" if request.service_name else ""
        return f"No service{named} in the CMDB has the GitHub repository {request.repository}."
    mapped = [(ci, target) for ci in candidates
              if (target := ci.github_environment_target(request.environment)) is not None]
    if len(mapped) > 1:
        return (f"Several services of {request.repository} map the GitHub environment {request.environment} "
                f"({_names([ci for ci, _ in mapped])}): keep it on the one it deploys only.")
    if mapped:
        [(service, environment_name)] = mapped
    elif len(candidates) > 1:
        # A repository that builds several services (a monorepo): its GitHub environments tell them apart.
        return (f"Several services have the GitHub repository {request.repository} ({_names(candidates)}) and "
                f"none maps the GitHub environment {request.environment}: add it to the GitHub environments of "
                "the one it deploys, with the Changeboard environment it stands for.")
    else:
        [service], environment_name = candidates, request.environment
    environment = Environment.objects.filter(name__iexact=environment_name).first()
    if environment is None:
        return f"Changeboard has no environment named {environment_name}."
    return service, environment


def _names(cis: list[ConfigurationItem], shown: int = 5) -> str:
    more = f" and {len(cis) - shown} more" if len(cis) > shown else ""
    return ", ".join(ci.name for ci in cis[:shown]) + more


def _review_decided(*, actor: ActingUser, request: ProtectionRuleRequest) -> GitHubReview:
    target = _deployment_target(request)
    refusals = [target] if isinstance(target, str) else []
    if not request.sha:
        refusals.append("The delivery names no commit (deployment.sha is missing): Changeboard cannot tell which "
                        "build would be deployed.")
    check = None
    if refusals:
        state, comment = _rejection(refusals)
    else:
        assert not isinstance(target, str)
        service, environment = target
        artifact = (Artifact.objects.filter(service=service, source_commit=request.sha).order_by("-created_at")
                    .first())
        digest = artifact.digest if artifact else ""
        now = timezone.now()
        change = (ChangeRequest.objects.filter(number=request.change_number).first() if request.change_number
                  else change_for_deployment(service, environment, now, digest))
        check = deployment_check(actor=actor, token=None, question=Question(
            change=change.number if change else "", service=service.name, environment=environment.name,
            digest=digest or f"commit {request.sha}"))
        if check.decision == GateDecision.ALLOW:
            assert change is not None and artifact is not None  # the gate denies a check without either
            state = GitHubReview.State.APPROVED
            comment = _comment(f"Changeboard allows this deployment under {change.number}",
                               [f"check {check.pk}, {artifact.version} ({digest})"])
        else:
            state, comment = _rejection([reason["message"] for reason in check.reasons])
    return GitHubReview.objects.create(
        delivery=request.delivery, repository=request.repository, environment_name=request.environment,
        sha=request.sha, installation_id=request.installation_id, callback_url=request.callback_url,
        deployment_id=request.deployment_id, gate_check=check, state=state, comment=comment)


# What GitHub's deployment states say about what ran; queued, pending and inactive say nothing.
REPORTED_STATES = {"in_progress": DeploymentStatus.STARTED, "success": DeploymentStatus.SUCCEEDED,
                   "failure": DeploymentStatus.FAILED, "error": DeploymentStatus.FAILED}


def deployment_status_record(*, actor: ActingUser, report: DeploymentStatusReport) -> Deployment | None:
    """What GitHub ran under a deployment Changeboard approved, as its statuses come: started, then succeeded or
    failed. A status that comes first with the outcome starts and ends the deployment at once; one repeated
    changes nothing. None for deployments Changeboard did not approve and for states that say nothing. What
    cannot be recorded ran all the same: the ledger says so, with the reason, for the CAB to follow up."""
    status = REPORTED_STATES.get(report.state)
    if status is None:
        return None
    try:
        with transaction.atomic():
            # Locked: two statuses of one deployment arriving together record it once.
            review = (GitHubReview.objects.select_for_update(of=("self",))
                      .select_related("gate_check__change", "gate_check__service", "gate_check__environment",
                                      "gate_check__artifact")
                      .filter(deployment_id=report.deployment_id, repository__iexact=report.repository,
                              state=GitHubReview.State.APPROVED).first())
            if review is None:
                return None
            check = review.gate_check
            assert check is not None  # a review is approved only by an allowing check
            deployment = deployment_observed(actor=actor, check=check)
            if status != DeploymentStatus.STARTED and deployment.is_running:
                deployment = deployment_finish(actor=actor, token=None, deployment=deployment, status=status)
            elif status != DeploymentStatus.STARTED and deployment.status == DeploymentStatus.ABANDONED:
                # Ended by hand for want of news; the news comes after all, and the ledger keeps it.
                audit_record("deployment_outcome_after_abandon", obj=deployment, context={"state": report.state})
            return deployment
    except Conflict as refusal:
        if refusal.code == "environment_locked":
            audit_record("github_deployment_unrecorded", obj=check, context={
                "repository": report.repository, "deployment_id": report.deployment_id, "state": report.state,
                "reason": refusal.message})
        raise


# --- answering GitHub ------------------------------------------------------------------------------------------

class GitHubUnavailable(Exception):
    """GitHub did not take the answer this time; worth trying again."""


def _app_jwt() -> str:
    """A short-lived JWT that authenticates Changeboard as the GitHub App."""
    now = int(time.time())
    key = settings.GITHUB_APP_PRIVATE_KEY or Path(settings.GITHUB_APP_PRIVATE_KEY_FILE).read_text()
    # Backdated a minute for clock drift; GitHub accepts at most ten minutes of validity.
    return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(settings.GITHUB_APP_ID)}, key, algorithm="RS256")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is: followed, it would carry the installation token elsewhere."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _call(url: str, *, token: str, body: dict) -> tuple[int, bytes]:
    # The URL is GITHUB_API_URL's, checked on intake; http only where a test stands in for GitHub.
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={  # noqa: S310
        "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION, "Content-Type": "application/json", "User-Agent": "Changeboard",
    })
    try:
        with _opener.open(request, timeout=REVIEW_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise GitHubUnavailable(f"GitHub unreachable: {error}") from error


def _installation_token(installation_id: int) -> str:
    url = f"{settings.GITHUB_API_URL}/app/installations/{installation_id}/access_tokens"
    status, body = _call(url, token=_app_jwt(), body={})
    if status != 201:
        raise GitHubUnavailable(f"Installation token refused: HTTP {status}")
    return json.loads(body)["token"]


# GitHub fails a job that waits longer than 30 days; a review is sent again until then, this many tries at most.
REVIEW_PATIENCE = timedelta(days=30)
REVIEW_TRIES = 50


def reviews_unanswered(now: datetime):
    """Reviews still owed to GitHub, past their first try's moment: for the periodic resend."""
    return GitHubReview.objects.filter(answered_at__isnull=True, attempts__lt=REVIEW_TRIES,
                                       received_at__gt=now - REVIEW_PATIENCE,
                                       received_at__lt=now - timedelta(minutes=1))


def review_send(review_id: int) -> GitHubReview | None:
    """Send the review once. A worker holding the review locks it; another worker racing for it skips it."""
    with transaction.atomic():
        review = (GitHubReview.objects.select_for_update(skip_locked=True)
                  .filter(pk=review_id, answered_at__isnull=True).first())
        if review is None:
            return None
        review.attempts += 1
        try:
            status, body = _call(review.callback_url, token=_installation_token(review.installation_id), body={
                "environment_name": review.environment_name, "state": review.state, "comment": review.comment})
        except GitHubUnavailable as error:  # recorded like any other failed try, then tried again
            status, body = None, str(error).encode()
        if status == 204:
            review.answered_at, review.last_error = timezone.now(), ""
        else:
            # 422: nothing is pending any more, or not yet; worth a few more tries before giving up.
            review.last_error = (f"HTTP {status}: " if status else "") + body[:500].decode(errors="replace")
        review.save(update_fields=["attempts", "last_error", "answered_at"])
    if review.answered_at is None:
        raise GitHubUnavailable(review.last_error)
    return review


# Named for the module it was first queued under, so queued messages still resolve.
@shared_task(name="governance.tasks.github_review_send", ignore_result=True, bind=True, max_retries=5)
def github_review_send(self, review_id: int) -> None:
    """Answer a GitHub deployment protection rule; GitHub unreachable or not ready (422) is tried again."""
    try:
        review_send(review_id)
    except GitHubUnavailable as error:
        countdown = settings.GITHUB_REVIEW_RETRY_SECONDS * 2 ** self.request.retries
        raise self.retry(exc=error, countdown=countdown) from error
