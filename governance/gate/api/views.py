from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cmdb.api.serializers import CINameField
from cmdb.models import Environment
from governance.gate.services import deployment_check
from governance.models.changes import ChangeRequest
from releases.models import digest_validator


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
