"""What the deployments API reads and answers: a deployment with its waves, steps, checks and log; a plan, whole, and
the body that writes one."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cmdb.models import ConfigurationItem, Environment
from governance.core.serializers import InputSerializer, LookupField, StorableJSONObjectField
from governance.deployments import plans
from governance.deployments.services import MAX_REASON
from governance.models.changes import ChangeRequest
from releases.models import (
    LONGEST_STEP_SECONDS,
    Artifact,
    CheckPhase,
    DatabaseMigration,
    Deployment,
    DeploymentPlan,
    ExecutorKind,
    HealthCheck,
    PlanWave,
    RolloutStep,
)


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


# --- writing a plan: the input, checked for shape here; every rule is the plan service's --------------------------

class WaveInputSerializer(InputSerializer):
    name = serializers.CharField(max_length=100, trim_whitespace=False)
    targets = serializers.ListField(child=serializers.CharField(max_length=200, trim_whitespace=False,
                                                                allow_blank=True),
                                    max_length=plans.MAX_TARGETS, help_text="Hosts, regions or clusters, as the "
                                                                            "executor names them.")
    bake_seconds = serializers.IntegerField(min_value=0, max_value=LONGEST_STEP_SECONDS, default=0)
    manual_gate = serializers.BooleanField(default=False)


class CheckInputSerializer(InputSerializer):
    name = serializers.CharField(max_length=100, trim_whitespace=False)
    phase = serializers.ChoiceField(choices=CheckPhase.choices)
    kind = serializers.ChoiceField(choices=HealthCheck.Kind.choices, default=HealthCheck.Kind.HTTP)
    url = serializers.CharField(max_length=500, help_text=HealthCheck._meta.get_field("url").help_text)
    expected_status = serializers.IntegerField(min_value=100, max_value=599, default=200)
    body_contains = serializers.CharField(max_length=200, allow_blank=True, trim_whitespace=False, default="")
    max_latency_ms = serializers.IntegerField(min_value=1, max_value=LONGEST_STEP_SECONDS * 1000, allow_null=True,
                                              default=None)
    query = serializers.CharField(max_length=5000, allow_blank=True, trim_whitespace=False, default="")
    threshold = serializers.FloatField(allow_null=True, default=None)
    fails_when = serializers.ChoiceField(choices=HealthCheck.FailsWhen.choices, default=HealthCheck.FailsWhen.ABOVE)
    measures = serializers.ChoiceField(choices=HealthCheck.Measures.choices, allow_blank=True, default="")


def _arguments(help_text: str, **kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=500, trim_whitespace=False, allow_blank=True),
                                 max_length=plans.MAX_ARGUMENTS, help_text=help_text, **kwargs)


class MigrationInputSerializer(InputSerializer):
    forward = _arguments("The command that migrates, as arguments.")
    forward_schema_version = serializers.CharField(max_length=100)
    backward = _arguments("The command that undoes it; empty if it cannot be undone.", default=list)
    backward_schema_version = serializers.CharField(max_length=100, allow_blank=True, default="")
    version_command = _arguments("A command printing the schema version in force.", default=list)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=LONGEST_STEP_SECONDS, default=600)


class PlanInputSerializer(InputSerializer):
    """A plan as a whole: what a PUT sends replaces it (waves in the order they run)."""

    executor = serializers.ChoiceField(choices=ExecutorKind.choices)
    executor_settings = StorableJSONObjectField(help_text="The executor's settings; never a secret, but the name of "
                                                          "the environment variable holding it (token_env).")
    require_rehearsal = serializers.BooleanField(default=False)
    rollout_repeatable = serializers.BooleanField(default=True)
    waves: serializers.ListSerializer = serializers.ListSerializer(child=WaveInputSerializer(),
                                                                   max_length=plans.MAX_WAVES,
                                                                   help_text="In the order they run.")
    checks: serializers.ListSerializer = serializers.ListSerializer(child=CheckInputSerializer(),
                                                                    max_length=plans.MAX_CHECKS, required=False)
    migration = MigrationInputSerializer(allow_null=True, required=False)


class PlanCreateInputSerializer(PlanInputSerializer):
    service = LookupField(queryset=ConfigurationItem.objects.all(), slug_field="name")
    environment = LookupField(queryset=Environment.objects.all(), slug_field="name")


def plan_input(data: dict) -> plans.PlanInput:
    """The checked body as the plan service takes it."""
    migration = data.get("migration")
    return plans.PlanInput(
        executor=data["executor"], executor_settings=data["executor_settings"],
        waves=[plans.WaveInput(**wave) for wave in data["waves"]],
        checks=[plans.CheckInput(**check) for check in data.get("checks", [])],
        migration=plans.MigrationInput(**migration) if migration else None,
        require_rehearsal=data["require_rehearsal"], rollout_repeatable=data["rollout_repeatable"])


class PlanWaveSerializer(serializers.ModelSerializer):
    class Meta:
        model = PlanWave
        fields = ["position", "name", "targets", "bake_seconds", "manual_gate"]


class PlanCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = HealthCheck
        fields = ["name", "phase", "kind", "url", "expected_status", "body_contains", "max_latency_ms", "query",
                  "threshold", "fails_when", "measures"]


class PlanMigrationSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatabaseMigration
        fields = ["forward", "forward_schema_version", "backward", "backward_schema_version", "version_command",
                  "timeout_seconds"]


class DeploymentPlanDetailSerializer(serializers.ModelSerializer):
    """One plan whole: its executor and settings, waves in order, health checks and migration."""

    service = serializers.CharField(source="service.name")
    environment = serializers.CharField(source="environment.name")
    waves = PlanWaveSerializer(many=True)
    checks = PlanCheckSerializer(many=True, source="health_checks")
    migration = serializers.SerializerMethodField()

    class Meta:
        model = DeploymentPlan
        fields = ["id", "service", "environment", "executor", "executor_settings", "require_rehearsal",
                  "rollout_repeatable", "waves", "checks", "migration", "created_at"]

    @extend_schema_field(PlanMigrationSerializer(allow_null=True))
    def get_migration(self, plan: DeploymentPlan) -> dict | None:
        migration = getattr(plan, "migration", None)
        return PlanMigrationSerializer(migration).data if migration is not None else None
