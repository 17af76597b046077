"""What the deployments API reads and answers: a deployment with its waves, steps, checks and log."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.core.serializers import InputSerializer, LookupField
from governance.deployments.services import MAX_REASON
from governance.models.changes import ChangeRequest
from releases.models import Artifact, Deployment, DeploymentPlan, HealthCheck, RolloutStep


class StepSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.SerializerMethodField(help_text="null until the step ended.")

    class Meta:
        model = RolloutStep
        fields = ["sequence", "wave_position", "wave_name", "kind", "targets", "state", "unsafe_to_repeat",
                  "attempt", "started_at", "finished_at", "duration_seconds"]

    def get_duration_seconds(self, step: RolloutStep) -> float | None:
        duration = step.duration
        return None if duration is None else round(duration.total_seconds(), 3)


class LogEntrySerializer(serializers.ModelSerializer):
    """A step's output and result, as the deployment's log shows it."""

    class Meta:
        model = RolloutStep
        fields = ["sequence", "wave_name", "kind", "state", "finished_at", "output"]


class HealthCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = HealthCheck
        fields = ["name", "phase", "kind", "url", "expected_status", "body_contains", "max_latency_ms", "query",
                  "threshold", "fails_when", "measures"]


class WaveSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    targets = serializers.ListField(child=serializers.CharField())
    bake_seconds = serializers.IntegerField()
    manual_gate = serializers.BooleanField()
    steps = StepSerializer(many=True)


class DeploymentSummarySerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    environment = serializers.CharField(source="environment.name")
    artifact = serializers.CharField(source="artifact.digest")
    version = serializers.CharField(source="artifact.version")
    plan = serializers.IntegerField(source="plan_id", allow_null=True, help_text="null for a pipeline's.")

    class Meta:
        model = Deployment
        fields = ["number", "kind", "service", "environment", "artifact", "version", "status", "change_number",
                  "plan", "halt_reason", "started_at", "finished_at"]


class DeploymentDetailSerializer(DeploymentSummarySerializer):
    previous_artifact = serializers.CharField(source="previous_artifact.digest", allow_null=True, default=None)
    aborted_by = serializers.CharField(source="aborted_by.username", allow_null=True, default=None)
    waves = serializers.SerializerMethodField()
    checks = serializers.SerializerMethodField()
    log = serializers.SerializerMethodField(help_text="Each step that ran, its result and output, in order.")

    class Meta(DeploymentSummarySerializer.Meta):
        fields = [*DeploymentSummarySerializer.Meta.fields, "previous_artifact", "aborted_by", "manual_steps",
                  "rollback_error_rate_pct", "rollback_latency_p99_ms", "rollback_failed_health_checks", "waves",
                  "checks", "log"]

    @extend_schema_field(WaveSerializer(many=True))
    def get_waves(self, deployment: Deployment) -> list[dict]:
        return list(WaveSerializer(waves_of(deployment), many=True).data)

    @extend_schema_field(HealthCheckSerializer(many=True))
    def get_checks(self, deployment: Deployment) -> list[dict]:
        checks = deployment.plan.health_checks.all() if deployment.plan is not None else []
        return list(HealthCheckSerializer(checks, many=True).data)

    @extend_schema_field(LogEntrySerializer(many=True))
    def get_log(self, deployment: Deployment) -> list[dict]:
        ran = [step for step in deployment.steps.all() if step.started_at is not None]
        return list(LogEntrySerializer(ran, many=True).data)


def waves_of(deployment: Deployment) -> list[dict]:
    """The plan's waves in order, each with its steps (a rollback's steps under the wave they undo)."""
    steps = list(deployment.steps.all())
    waves = deployment.plan.waves.all() if deployment.plan is not None else []
    return [{"position": wave.position, "name": wave.name, "targets": wave.targets,
             "bake_seconds": wave.bake_seconds, "manual_gate": wave.manual_gate,
             "steps": [step for step in steps if step.wave_position == wave.position]} for wave in waves]


class DeploymentPlanSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    environment = serializers.CharField(source="environment.name")
    waves = serializers.SerializerMethodField(help_text="The waves' names, in order.")

    class Meta:
        model = DeploymentPlan
        fields = ["id", "service", "environment", "executor", "require_rehearsal", "rollout_repeatable", "waves"]

    def get_waves(self, plan: DeploymentPlan) -> list[str]:
        return [wave.name for wave in plan.waves.all()]


class StartInputSerializer(InputSerializer):
    change = LookupField(queryset=ChangeRequest.objects.all(), slug_field="number", help_text="e.g. CHG0000123")
    plan = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="The deployment plan's id.")
    artifact = LookupField(queryset=Artifact.objects.all(), slug_field="digest", help_text="sha256:…")


class PauseInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=MAX_REASON, required=False, allow_blank=True, default="")


class AbortInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=MAX_REASON, help_text="Why it is stopped, for the record.")
