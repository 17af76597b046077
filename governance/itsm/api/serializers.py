"""The incidents API's shapes: incidents with their affected CIs, their ranked suspects with the parts of each score,
and a release manager's decision on a suspect."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cmdb.models import ConfigurationItem
from governance.core.serializers import InputSerializer
from governance.itsm.correlation import MAX_REASON
from governance.models.itsm import Incident, IncidentSuspect


class ScorePartSerializer(serializers.Serializer):
    factor = serializers.CharField()
    detail = serializers.CharField()
    points = serializers.IntegerField()


class SuspectSerializer(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment.number")
    service = serializers.CharField(source="deployment.service.name")
    deployment_status = serializers.CharField(source="deployment.status")
    deployed_at = serializers.DateTimeField(source="deployment.started_at")
    parts = serializers.SerializerMethodField(help_text="What the score is made of: the points add up to it.")
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)

    class Meta:
        model = IncidentSuspect
        fields = ["id", "rank", "deployment", "service", "deployment_status", "deployed_at", "change_number", "score",
                  "parts", "status", "decided_by", "decided_at", "reason"]

    @extend_schema_field(ScorePartSerializer(many=True))
    def get_parts(self, suspect: IncidentSuspect) -> list[dict]:
        return suspect.parts


class IncidentSerializer(serializers.ModelSerializer):
    affected_cis: "serializers.SlugRelatedField[ConfigurationItem]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    suspect_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Incident
        fields = ["id", "source", "external_id", "number", "title", "priority", "state", "opened_at", "resolved_at",
                  "affected_cis", "suspect_count", "received_at", "updated_at"]


class IncidentDetailSerializer(serializers.ModelSerializer):
    affected_cis: "serializers.SlugRelatedField[ConfigurationItem]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    suspects = SuspectSerializer(many=True, read_only=True, help_text="Ranked, most likely cause first.")

    class Meta:
        model = Incident
        fields = ["id", "source", "external_id", "number", "title", "priority", "state", "opened_at", "resolved_at",
                  "affected_cis", "received_at", "updated_at", "suspects"]


class DecisionInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=MAX_REASON, help_text="Why, for the record.")
