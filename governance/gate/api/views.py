from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.access.authentication import BearerTokenAuthentication, request_token
from governance.access.services import api_token_authenticate
from governance.core.api_schema import ErrorSerializer
from governance.core.serializers import InputSerializer, validated, validated_by
from governance.gate.services import Question, deployment_check, deployment_finish, deployment_start
from governance.models.gate import DeploymentCheck, GateDecision
from releases.models import Deployment, DeploymentStatus, digest_validator
from releases.workflow import REPORTED


class CheckRequestSerializer(InputSerializer):
    """Names only: the gate reads what they name in one round trip, and says which name it does not know."""

    change = serializers.CharField(max_length=12, help_text="The change's number, e.g. CHG0000123.")
    service = serializers.CharField(max_length=200, help_text="The service CI's name, whatever the case.")
    environment = serializers.CharField(max_length=50)
    artifact = serializers.CharField(max_length=71, validators=[digest_validator], help_text="sha256:<64 hex>")


class CheckAnswerSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=GateDecision.choices)
    reasons = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    check_id = serializers.UUIDField(source="id")
    valid_until = serializers.DateTimeField()


# Every deployment asks the gate first: its two serializers are made once, not per request, as DRF copies a
# serializer's declared fields each time one is made (0.31 ms a check for the two, against 0.05 ms made once).
QUESTION = CheckRequestSerializer()
ANSWER = CheckAnswerSerializer()


def _answer(request, data) -> DeploymentCheck:
    given = validated_by(QUESTION, data)
    question = Question(change=given["change"], service=given["service"], environment=given["environment"],
                        digest=given["artifact"])
    return deployment_check(actor=request.user, token=request_token(request), question=question)


class DeploymentCheckView(APIView):
    """May this artifact of this service go to this environment now? Every reason to deny is listed."""

    write_records_token = True  # the check's own ledger event names the token; a token_used event would repeat it

    @extend_schema(request=CheckRequestSerializer, responses={200: CheckAnswerSerializer})
    def post(self, request):
        return Response(ANSWER.to_representation(_answer(request, request.data)), status=status.HTTP_200_OK)


class StatusGateView(APIView):
    """The same decision for callers that read only the status, 200 to proceed and 403 to halt: a shell step with
    `curl --fail`. Not for an Argo Rollouts web metric, which counts any status but 2xx as an error of the
    measurement, not a failure: it asks /api/v1/deployment-checks/, which answers a deny with 200 too."""

    write_records_token = True

    @extend_schema(request=CheckRequestSerializer, responses={200: CheckAnswerSerializer, 403: CheckAnswerSerializer})
    def post(self, request):
        check = _answer(request, self.question_data(request))
        code = status.HTTP_200_OK if check.decision == GateDecision.ALLOW else status.HTTP_403_FORBIDDEN
        return Response(ANSWER.to_representation(check), status=code)

    def question_data(self, request) -> dict:
        return request.data


def flagger_metadata(request) -> dict | None:
    """The `metadata` object of a Flagger webhook's body, where Flagger carries what it was configured with."""
    metadata = request.data.get("metadata") if isinstance(request.data, dict) else None
    return metadata if isinstance(metadata, dict) else None


class FlaggerMetadataTokenAuthentication(BearerTokenAuthentication):
    """Flagger sends no headers of its own: its webhook's metadata may carry the pipeline token instead."""

    def authenticate(self, request):
        by_header = super().authenticate(request)
        if by_header is not None:
            return by_header
        secret = (flagger_metadata(request) or {}).get("token")
        if not secret:
            return None
        token = api_token_authenticate(str(secret))
        if token is None:
            raise exceptions.AuthenticationFailed("The token in the webhook's metadata is unknown, expired or revoked.")
        return token.user, token


class FlaggerTokenScheme(OpenApiAuthenticationExtension):
    target_class = FlaggerMetadataTokenAuthentication
    name = "flaggerMetadataToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A pipeline token, as a bearer header or as `token` in the webhook's metadata."}


class FlaggerMetadataSerializer(CheckRequestSerializer):
    """The metadata set on the webhook in the Canary resource: the question, and the pipeline token unless an
    Authorization header carries it. Other keys are Flagger's configuration and are not read."""

    token = serializers.CharField(required=False, help_text="A pipeline token (cbt_...), when no Authorization "
                                                            "header carries one.")


class FlaggerHookSerializer(serializers.Serializer):
    """What Flagger POSTs to a webhook: the canary, its phase and the webhook's metadata. Only the metadata is read."""

    name = serializers.CharField(required=False, allow_blank=True, help_text="The canary's name.")
    namespace = serializers.CharField(required=False, allow_blank=True, help_text="The canary's namespace.")
    phase = serializers.CharField(required=False, allow_blank=True, help_text="The canary's phase, e.g. Progressing.")
    checksum = serializers.CharField(required=False, allow_blank=True,
                                     help_text="The hash of the canary's configuration.")
    metadata = FlaggerMetadataSerializer()


class FlaggerGateView(StatusGateView):
    """For Flagger's confirm-rollout, confirm-promotion and pre-rollout webhooks: the question travels in the
    webhook's metadata ({"change", "service", "environment", "artifact"})."""

    authentication_classes = [FlaggerMetadataTokenAuthentication]
    # Its authentication reads the body (the token may travel in the metadata), so a stranger's body is parsed:
    # a webhook's is a few hundred bytes, and no more than this is read.
    max_body_bytes = 16 * 1024

    @extend_schema(request=FlaggerHookSerializer,
                   responses={200: CheckAnswerSerializer, 403: CheckAnswerSerializer})
    def post(self, request):
        return super().post(request)

    def question_data(self, request) -> dict:
        metadata = flagger_metadata(request)
        if metadata is None:
            raise exceptions.ValidationError({"metadata": "Flagger's webhook metadata must carry change, service, "
                                                          "environment and artifact."})
        # The metadata is Flagger's configuration: the token and whatever else it carries are not the question.
        return {name: value for name, value in metadata.items() if name in QUESTION.fields}


class DeploymentReportSerializer(InputSerializer):
    check_id = serializers.UUIDField(required=False, help_text="To report a start: the check that allowed it.")
    deployment = serializers.CharField(required=False, help_text="To report an end: the DEP number.")
    status = serializers.ChoiceField(choices=[(s, DeploymentStatus(s).label) for s in REPORTED])

    def validate(self, attrs):
        if attrs["status"] == DeploymentStatus.STARTED and "check_id" not in attrs:
            raise serializers.ValidationError({"check_id": "A start names the check that allowed it."})
        if attrs["status"] != DeploymentStatus.STARTED and "deployment" not in attrs:
            raise serializers.ValidationError({"deployment": "An end names the deployment it ends."})
        return attrs


class DeploymentSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    environment = serializers.CharField(source="environment.name")
    artifact = serializers.CharField(source="artifact.digest")

    class Meta:
        model = Deployment
        fields = ["number", "service", "environment", "artifact", "status", "change_number", "check_id",
                  "started_at", "finished_at"]


class DeploymentReportView(APIView):
    """Pipelines report what actually ran: started (under an allowed check), then succeeded, failed or rolled back."""

    @extend_schema(request=DeploymentReportSerializer, responses={
        200: DeploymentSerializer, 201: DeploymentSerializer,
        404: OpenApiResponse(ErrorSerializer, description="The check or the deployment named is not known.")})
    def post(self, request):
        data = validated(DeploymentReportSerializer, request.data)
        token = request_token(request)
        if data["status"] == DeploymentStatus.STARTED:
            checks = DeploymentCheck.objects.select_related("change", "service", "environment", "artifact")
            check = get_object_or_404(checks, pk=data["check_id"])
            deployment, created = deployment_start(actor=request.user, token=token, check=check)
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        else:
            deployment = get_object_or_404(Deployment.objects.select_related("service", "environment"),
                                           number=data["deployment"])
            deployment = deployment_finish(actor=request.user, token=token, status=data["status"],
                                           deployment=deployment)
            code = status.HTTP_200_OK
        return Response(DeploymentSerializer(deployment).data, status=code)
