"""The webhooks GitHub calls: a job waiting on a Changeboard deployment protection rule, and the statuses of the
deployment it then runs."""

import logging

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.gate.github import (
    DeploymentStatusReport,
    ProtectionRuleRequest,
    deployment_status_record,
    gate_account,
    protection_rule_review,
    signature_valid,
)

logger = logging.getLogger(__name__)


class GitHubNotConfigured(exceptions.APIException):
    """Whoever calls learns only that the webhook is not set up; which setting is missing goes to the log."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "GitHub webhooks are not configured on this server."
    default_code = "not_configured"


class GitHubSignatureAuthentication(authentication.BaseAuthentication):
    """GitHub signs each webhook's body with the App's webhook secret: a body so signed comes from the App, which
    acts in Changeboard as its service account."""

    def authenticate(self, request):
        if not settings.GITHUB_WEBHOOK_SECRET:
            logger.error("A GitHub webhook was refused: GITHUB_WEBHOOK_SECRET is not set.")
            raise GitHubNotConfigured()
        if not signature_valid(request.body, request.headers.get("X-Hub-Signature-256", ""),
                               settings.GITHUB_WEBHOOK_SECRET):
            raise exceptions.AuthenticationFailed("X-Hub-Signature-256 does not match the body.",
                                                  code="bad_signature")
        return gate_account(), None

    def authenticate_header(self, request) -> str:
        return 'X-Hub-Signature-256 realm="changeboard"'


@extend_schema(exclude=True)  # GitHub's own payloads, documented by GitHub
class GitHubWebhookView(APIView):
    authentication_classes = [GitHubSignatureAuthentication]

    def post(self, request):
        event = request.headers.get("X-GitHub-Event", "")
        if event == "ping":
            return Response({"pong": True})
        if event == "deployment_status":
            return self.deployment_status(request)
        if event == "deployment_protection_rule":
            return self.protection_rule(request)
        return Response({"ignored": event}, status=status.HTTP_202_ACCEPTED)

    def protection_rule(self, request) -> Response:
        delivery = request.headers.get("X-GitHub-Delivery", "")
        if not delivery or len(delivery) > 64:
            raise exceptions.ValidationError({"X-GitHub-Delivery": "The delivery id is missing."})
        review = protection_rule_review(actor=request.user, request=ProtectionRuleRequest.parse(delivery, request.data))
        return Response({"state": review.state, "comment": review.comment,
                         "check_id": str(review.gate_check_id) if review.gate_check_id else None},
                        status=status.HTTP_202_ACCEPTED)

    def deployment_status(self, request) -> Response:
        """GitHub reports what ran under an approval: recorded as a deployment, as a pipeline would report it."""
        deployment = deployment_status_record(actor=request.user, report=DeploymentStatusReport.parse(request.data))
        if deployment is None:
            return Response({"ignored": "not a deployment Changeboard approved, or a state that says nothing"},
                            status=status.HTTP_202_ACCEPTED)
        return Response({"deployment": deployment.number, "status": deployment.status},
                        status=status.HTTP_202_ACCEPTED)
