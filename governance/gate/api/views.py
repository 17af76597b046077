from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cmdb.api.serializers import CINameField
from cmdb.models import Environment
from governance.gate.services import deployment_check, deployment_finish, deployment_start
from governance.models.changes import ChangeRequest
from governance.models.gate import DeploymentCheck
from releases.models import Deployment, DeploymentStatus, digest_validator


class CheckRequestSerializer(serializers.Serializer):
    change = serializers.SlugRelatedField(slug_field="number", queryset=ChangeRequest.objects.all())
    service = CINameField()
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    artifact = serializers.CharField(max_length=71, validators=[digest_validator])


class CheckAnswerSerializer(serializers.Serializer):
    decision = serializers.CharField()
    reasons = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    check_id = serializers.UUIDField(source="id")
    valid_until = serializers.DateTimeField()


class DeploymentCheckView(APIView):
    """May this artifact of this service go to this environment now? Every reason to deny is listed."""

    @extend_schema(request=CheckRequestSerializer, responses={200: CheckAnswerSerializer})
    def post(self, request):
        given = CheckRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        check = deployment_check(actor=request.user, change=data["change"], service=data["service"],
                                 environment=data["environment"], digest=data["artifact"])
        return Response(CheckAnswerSerializer(check).data, status=status.HTTP_200_OK)


class DeploymentReportSerializer(serializers.Serializer):
    check_id = serializers.UUIDField(required=False, help_text="To report a start: the check that allowed it.")
    deployment = serializers.CharField(required=False, help_text="To report an end: the DEP number.")
    status = serializers.ChoiceField(choices=DeploymentStatus.choices)

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

    @extend_schema(request=DeploymentReportSerializer, responses={200: DeploymentSerializer})
    def post(self, request):
        given = DeploymentReportSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        if data["status"] == DeploymentStatus.STARTED:
            check = get_object_or_404(DeploymentCheck.objects.select_related("change"), pk=data["check_id"])
            deployment = deployment_start(actor=request.user, check=check)
            code = status.HTTP_201_CREATED
        else:
            deployment = deployment_finish(actor=request.user, status=data["status"],
                                           deployment=get_object_or_404(Deployment, number=data["deployment"]))
            code = status.HTTP_200_OK
        return Response(DeploymentSerializer(deployment).data, status=code)
