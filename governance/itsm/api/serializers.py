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


class IncidentWebhookSerializer(serializers.Serializer):
    """An incident as an ITSM tool sends it, by its plain names; ServiceNow's incident record is taken as it is
    (sys_id, short_description, cmdb_ci and sys_updated_on stand for external_id, title, affected_cis and
    updated_at, and its "1 - Critical" priorities are read). Only for the schema: the service reads the body."""

    external_id = serializers.CharField(max_length=200, help_text="The incident's id in the tool (ServiceNow: sys_id).")
    number = serializers.CharField(max_length=100, required=False, help_text="The tool's number, e.g. INC0010001.")
    title = serializers.CharField(max_length=500, help_text="ServiceNow: short_description.")
    priority = serializers.IntegerField(min_value=1, max_value=5, help_text="1 (critical) to 5 (planning).")
    state = serializers.CharField(max_length=50, required=False)
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(required=False, help_text="Not before opened_at.")
    affected_cis = serializers.ListField(child=serializers.CharField(), required=False,
                                         help_text="Configuration item names (ServiceNow: one cmdb_ci).")
    updated_at = serializers.DateTimeField(required=False, help_text="When the tool last changed it: an older "
                                                                      "delivery than the one taken is ignored.")


class IncidentTakenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    # DRF's metaclass takes declared fields off the class, so this does not shadow Field.source as the stubs think.
    source = serializers.CharField()  # type: ignore[assignment]
    external_id = serializers.CharField()
    number = serializers.CharField()
