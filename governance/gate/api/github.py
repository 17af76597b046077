"""The webhooks GitHub calls: a job waiting on a Changeboard deployment protection rule, and the statuses of the
deployment it then runs."""

import json

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from governance.audit.ledger import audit_record
from governance.errors import DomainError
from governance.gate.github import (
    DeploymentStatusReport,
    ProtectionRuleRequest,
    deployment_status_record,
    gate_account,
    protection_rule_review,
    signature_valid,
)
from governance.tasks import github_review_send


def _error(status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"errors": [{"code": code, "message": message, "field": field}]}, status=status)


@csrf_exempt  # authenticated by the HMAC signature of the body, not by a session
@require_POST
def github_webhook(request: HttpRequest) -> JsonResponse:
    if not settings.GITHUB_WEBHOOK_SECRET:
        return _error(503, "not_configured", "GITHUB_WEBHOOK_SECRET is not set: GitHub webhooks are refused.")
    if not signature_valid(request.body, request.headers.get("X-Hub-Signature-256", ""),
                           settings.GITHUB_WEBHOOK_SECRET):
        audit_record("authentication_failed", context={"method": "POST", "path": request.path,
                                                       "reason": "GitHub webhook signature missing or wrong"})
        return _error(401, "bad_signature", "X-Hub-Signature-256 does not match the body.", "X-Hub-Signature-256")
    event = request.headers.get("X-GitHub-Event", "")
    if event == "ping":
        return JsonResponse({"pong": True})
    if event == "deployment_status":
        return _deployment_status(request)
    if event != "deployment_protection_rule":
        return JsonResponse({"ignored": event}, status=202)
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if not delivery or len(delivery) > 64:
        return _error(400, "invalid", "X-GitHub-Delivery is missing.", "X-GitHub-Delivery")
    try:
        payload = json.loads(request.body)
        asked = ProtectionRuleRequest.parse(delivery, payload)
        request.user = gate_account()  # the ledger records the App's service account as the one who asked
        with transaction.atomic():
            review = protection_rule_review(actor=request.user, request=asked)
            if review.answered_at is None:  # new, or redelivered while still owed: send (again)
                # robust: with the broker down the webhook is still acknowledged; the periodic resend answers
                transaction.on_commit(lambda: github_review_send.delay(review.pk), robust=True)
    except ValueError:
        return _error(400, "invalid", "The body is not JSON.")
    except DomainError as error:
        first = error.as_errors()[0]
        return _error(error.status, first["code"], first["message"], first["field"])
    return JsonResponse({"state": review.state, "comment": review.comment,
                         "check_id": str(review.gate_check_id) if review.gate_check_id else None}, status=202)


def _deployment_status(request: HttpRequest) -> JsonResponse:
    """GitHub reports what ran under an approval: recorded as a deployment, as a pipeline would report it."""
    try:
        report = DeploymentStatusReport.parse(json.loads(request.body))
        request.user = gate_account()
        deployment = deployment_status_record(actor=request.user, report=report)
    except ValueError:
        return _error(400, "invalid", "The body is not JSON.")
    except DomainError as error:
        first = error.as_errors()[0]
        return _error(error.status, first["code"], first["message"], first["field"])
    if deployment is None:
        return JsonResponse({"ignored": "not a deployment Changeboard approved, or a state that says nothing"},
                            status=202)
    return JsonResponse({"deployment": deployment.number, "status": deployment.status}, status=202)
