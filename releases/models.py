"""How software ships: artifacts built once, their signatures and scans, and their promotion through the
environments of the chain."""

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment, Team

digest_validator = RegexValidator(r"^sha256:[0-9a-f]{64}$", "A digest is sha256: followed by 64 lower-case hex digits.")
source_commit_validator = RegexValidator(r"^[0-9a-f]{7,64}$", "A source commit is 7 to 64 lower-case hex digits.")
signature_validator = RegexValidator(r"^[0-9a-fA-F]*$", "A signature is given in hex.")


class SignatureStatus(models.TextChoices):
    UNSIGNED = "unsigned", "Unsigned"
    VALID = "valid", "Valid signature from a trusted key"
    INVALID = "invalid", "Invalid signature"
    UNTRUSTED = "untrusted", "Signed by a key no team trusts"


class TrustedKey(models.Model):
    """An Ed25519 public key a team trusts to sign its artifacts."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="trusted_keys")
    name = models.CharField(max_length=100)
    public_key_pem = models.TextField()
    key_id = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the raw public key.")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="trusted_key_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team}: {self.name}"


class Artifact(models.Model):
    """One build of a service: built once, identified by its digest, promoted from environment to environment."""

    service = models.ForeignKey(ConfigurationItem, on_delete=models.PROTECT, related_name="artifacts")
    version = models.CharField(max_length=100)
    digest = models.CharField(max_length=71, unique=True, validators=[digest_validator])
    source_commit = models.CharField(max_length=64, blank=True, validators=[source_commit_validator])
    build_url = models.URLField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    signature = models.CharField(max_length=200, blank=True, validators=[signature_validator],
                                 help_text="Ed25519 signature over the digest, hex.")
    signed_by = models.ForeignKey(TrustedKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    signature_status = models.CharField(max_length=20, choices=SignatureStatus.choices,
                                        default=SignatureStatus.UNSIGNED)
    provenance = models.JSONField(default=dict, blank=True, help_text="A provenance attestation, as given.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Built once: a version of a service has exactly one digest, so a rebuild cannot slip in.
            models.UniqueConstraint(fields=["service", "version"], name="artifact_version_once"),
            models.CheckConstraint(condition=models.Q(digest__regex=r"^sha256:[0-9a-f]{64}$"),
                                   name="artifact_digest_format"),
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.version}"


class Promotion(models.Model):
    """An artifact passed an environment of the promotion chain."""

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="promotions")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    passed_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["environment__position"]
        constraints = [models.UniqueConstraint(fields=["artifact", "environment"], name="promotion_once")]

    def __str__(self) -> str:
        return f"{self.artifact} passed {self.environment}"


class ScanVerdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    WARN = "warn", "Warn"


class ScanResult(models.Model):
    """A security scan of an artifact (SAST, DAST, dependency scan) and what it found."""

    class Kind(models.TextChoices):
        SAST = "sast", "SAST"
        DAST = "dast", "DAST"
        DEPENDENCY = "dependency", "Dependency scan"

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="scans")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    tool = models.CharField(max_length=100)
    verdict = models.CharField(max_length=10, choices=ScanVerdict.choices)
    critical = models.PositiveIntegerField(default=0)
    high = models.PositiveIntegerField(default=0)
    medium = models.PositiveIntegerField(default=0)
    low = models.PositiveIntegerField(default=0)
    report_url = models.URLField(max_length=500, blank=True)
    scanned_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-scanned_at"]

    def __str__(self) -> str:
        return f"{self.artifact} {self.kind} {self.verdict}"


class DeploymentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTED = "started", "Started"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"
    ABANDONED = "abandoned", "Ended by hand"


# The statuses in which a deployment holds its service in its environment: one at a time (a constraint says so).
HOLDING_STATUSES = (DeploymentStatus.STARTED, DeploymentStatus.PAUSED)


class DeploymentKind(models.TextChoices):
    REPORTED = "reported", "Reported by a pipeline"
    RUN = "run", "Run by Changeboard"


class NextDeploymentNumber(models.Func):
    """DEP0000045 from a sequence of its own."""

    template = "'DEP' || lpad(nextval('releases_deployment_number')::text, 7, '0')"
    output_field = models.CharField()


class Deployment(models.Model):
    """What actually ran: an artifact of a service deployed to an environment, as a pipeline reported it or as
    Changeboard ran it by its plan, wave by wave."""

    number = models.CharField(max_length=12, unique=True, db_default=NextDeploymentNumber(), editable=False)
    kind = models.CharField(max_length=10, choices=DeploymentKind.choices, default=DeploymentKind.REPORTED)
    service = models.ForeignKey(ConfigurationItem, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="deployments")
    status = models.CharField(max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.STARTED)
    change_number = models.CharField(max_length=12, blank=True)
    check_id = models.UUIDField(null=True, blank=True, help_text="The gate check that allowed it (reported only).")
    plan = models.ForeignKey("DeploymentPlan", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="deployments", help_text="The plan Changeboard runs it by (run only).")
    previous_artifact = models.ForeignKey(Artifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                          help_text="What ran there before it started: a rollback goes back to it.")
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    aborted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    halt_reason = models.TextField(blank=True, help_text="Why it paused, failed or was stopped, in words.")
    manual_steps = models.TextField(blank=True, help_text="What a person must do by hand where a rollback stopped.")
    caused_failure = models.BooleanField(default=False, help_text="A release manager confirmed it caused an "
                                                                  "incident: it counts in its service's change "
                                                                  "failure history.")
    # The change's rollback triggers, copied as plain data when the deployment is created (releases knows nothing of
    # changes): the watch while a wave bakes rolls the deployment back when one trips. Empty: no such trigger.
    rollback_error_rate_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True,
                                                  help_text="An error rate (a metric check measuring it) above this "
                                                            "rolls back.")
    rollback_latency_p99_ms = models.PositiveIntegerField(null=True, blank=True,
                                                          help_text="A p99 latency of the HTTP probes above this rolls "
                                                                    "back.")
    rollback_failed_health_checks = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="This many failed checks during a wave's watch roll back (without it, the "
                                         "first one does).")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One deployment at a time holds a service in an environment: a second one racing in is refused (a
            # pipeline's) or waits queued (Changeboard's).
            models.UniqueConstraint(fields=["service", "environment"],
                                    condition=models.Q(status__in=["started", "paused"]),
                                    name="deployment_holds_environment"),
            models.UniqueConstraint(fields=["check_id"], name="deployment_once_per_check"),
            # A pipeline's deployment ran under a gate check; Changeboard's runs by a plan.
            models.CheckConstraint(condition=models.Q(kind="reported", check_id__isnull=False)
                                   | models.Q(kind="run", plan__isnull=False), name="deployment_kind_has_its_origin"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.service} {self.artifact.version} -> {self.environment}"

    @property
    def is_running(self) -> bool:
        """Started (or paused) and not yet ended: it holds its service in its environment."""
        return self.status in HOLDING_STATUSES


def scan_kind_labels(kinds) -> list[str]:
    return [ScanResult.Kind(kind).label for kind in kinds]


class GatePolicy(models.Model):
    """What the gate asks of a build before it enters an environment, beyond the change and the calendar.
    An environment without a policy of its own gets the default: signatures in production, no failed scan."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="gate_policy")
    require_signature = models.BooleanField(default=False, help_text="Only builds signed by a trusted key.")
    required_scans = ArrayField(models.CharField(max_length=20, choices=ScanResult.Kind.choices), default=list,
                                blank=True, help_text="Scan kinds a build must have passed.")
    block_failed_scans = models.BooleanField(default=True, help_text="A failed scan of any kind stops the build.")
    max_critical = models.PositiveIntegerField(null=True, blank=True,
                                               help_text="Most critical findings allowed over all scans.")
    max_high = models.PositiveIntegerField(null=True, blank=True,
                                           help_text="Most high findings allowed over all scans.")

    class Meta:
        verbose_name_plural = "gate policies"

    def __str__(self) -> str:
        return f"Gate policy for {self.environment}"

    @classmethod
    def for_environment(cls, environment: Environment) -> "GatePolicy":
        try:
            return environment.gate_policy
        except cls.DoesNotExist:
            return cls.default(environment)

    @classmethod
    def default(cls, environment: Environment) -> "GatePolicy":
        return cls(environment=environment, require_signature=environment.is_production)


# The longest a single step may take (a command's timeout, a wave's bake time). The broker's visibility timeout
# is set above it (governance/settings.py), so a step still running is never handed to a second worker.
LONGEST_STEP_SECONDS = 3600


class ExecutorKind(models.TextChoices):
    COMMAND = "command", "Command"
    WEBHOOK = "webhook", "Webhook to a CD system"
    KUBERNETES = "kubernetes", "Kubernetes"


class DeploymentPlan(models.Model):
    """How Changeboard deploys a service to an environment: the executor and its settings, the waves in order,
    the health checks and an optional database migration."""

    service = models.ForeignKey(ConfigurationItem, on_delete=models.PROTECT, related_name="deployment_plans")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    executor = models.CharField(max_length=20, choices=ExecutorKind.choices, default=ExecutorKind.COMMAND)
    executor_settings = models.JSONField(default=dict, blank=True,
                                         help_text="The executor's settings; for a command: forward and backward "
                                                   "argument lists, an optional check, timeout_seconds.")
    require_rehearsal = models.BooleanField(default=False, help_text="A build goes here only once its rollback was "
                                                                     "rehearsed in a pre-production environment.")
    rollout_repeatable = models.BooleanField(default=True, help_text="Running a wave's rollout twice does no harm; "
                                                                     "when not, an interrupted one is checked with the "
                                                                     "executor instead of run again.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service__name", "environment__position"]
        constraints = [models.UniqueConstraint(fields=["service", "environment"], name="deployment_plan_once")]

    def __str__(self) -> str:
        return f"Plan for {self.service} in {self.environment}"


class PlanWave(models.Model):
    """One wave of a plan: the targets it deploys to together, how long it bakes, whether a person lets it start."""

    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="waves")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    targets = ArrayField(models.CharField(max_length=200), help_text="Hosts, regions or clusters, as the executor "
                                                                      "names them.")
    bake_seconds = models.PositiveIntegerField(default=0, help_text="How long the wave is watched before the next.")
    manual_gate = models.BooleanField(default=False, help_text="A release manager approves the wave before it runs.")

    class Meta:
        ordering = ["plan", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "position"], name="plan_wave_position_once"),
            models.CheckConstraint(condition=models.Q(bake_seconds__lte=LONGEST_STEP_SECONDS),
                                   name="plan_wave_bake_within_longest_step"),
        ]

    def __str__(self) -> str:
        return f"{self.plan}: wave {self.position} {self.name}"

    def clean(self) -> None:
        if not self.targets or any(not target.strip() for target in self.targets):
            raise ValidationError({"targets": "A wave names at least one target, none of them empty."})


class CheckPhase(models.TextChoices):
    PRE = "pre", "Before the wave"
    SMOKE = "smoke", "After the wave (smoke test)"
    WATCH = "watch", "While the wave bakes"


class HealthCheck(models.Model):
    """A check a plan makes before a wave, after it, or while it bakes. An HTTP probe asks each target for a status,
    a piece of the body and a latency ceiling ({target}, {version} and {digest} are filled in); a metric check asks
    a Prometheus server (`url`) a PromQL instant query once and compares its value with a threshold."""

    class Kind(models.TextChoices):
        HTTP = "http", "HTTP probe"
        METRIC = "metric", "Metric check (PromQL)"

    class FailsWhen(models.TextChoices):
        ABOVE = "above", "The value is above the threshold"
        BELOW = "below", "The value is below the threshold"

    class Measures(models.TextChoices):
        OTHER = "", "Something else"
        ERROR_RATE_PCT = "error_rate_pct", "The error rate, in per cent"

    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="health_checks")
    name = models.CharField(max_length=100)
    phase = models.CharField(max_length=10, choices=CheckPhase.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.HTTP)
    url = models.CharField(max_length=500, help_text="e.g. http://{target}/healthz; for a metric check, the "
                                                     "Prometheus server, e.g. http://prometheus:9090")
    expected_status = models.PositiveSmallIntegerField(default=200)
    body_contains = models.CharField(max_length=200, blank=True)
    max_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    query = models.TextField(blank=True, help_text="A metric check's PromQL, e.g. 100 * sum(rate(http_requests_total"
                                                   "{code=~\"5..\"}[1m])) / sum(rate(http_requests_total[1m]))")
    threshold = models.FloatField(null=True, blank=True, help_text="A metric check fails past it.")
    fails_when = models.CharField(max_length=10, choices=FailsWhen.choices, default=FailsWhen.ABOVE)
    measures = models.CharField(max_length=20, choices=Measures.choices, blank=True, default=Measures.OTHER,
                                help_text="What the query's value is, for the change's rollback triggers.")

    class Meta:
        ordering = ["plan", "phase", "name"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(kind="http") | ~models.Q(url=""), name="http_check_has_url"),
            models.CheckConstraint(condition=~models.Q(kind="metric") | (~models.Q(url="") & ~models.Q(query="")),
                                   name="metric_check_has_server_and_query"),
        ]

    def __str__(self) -> str:
        return f"{self.plan}: {self.name} ({self.get_phase_display().lower()})"

    def clean(self) -> None:
        if self.kind == self.Kind.METRIC:
            errors = {}
            if not self.url.startswith(("http://", "https://")):
                errors["url"] = "A metric check names its Prometheus server by an http:// or https:// URL."
            if not self.query.strip():
                errors["query"] = "A metric check has a PromQL query."
            if errors:
                raise ValidationError(errors)


class DatabaseMigration(models.Model):
    """A plan's schema migration: run once before the first wave, and the commands that tell and move the schema's
    version. Without a backward command the migration cannot be undone, and a rollback stops for a person."""

    plan = models.OneToOneField(DeploymentPlan, on_delete=models.CASCADE, related_name="migration")
    forward = ArrayField(models.CharField(max_length=500), help_text="The command that migrates, as arguments.")
    forward_schema_version = models.CharField(max_length=100, help_text="The schema version it leaves.")
    backward = ArrayField(models.CharField(max_length=500), default=list, blank=True,
                          help_text="The command that undoes it, as arguments; empty if it cannot be undone.")
    backward_schema_version = models.CharField(max_length=100, blank=True,
                                               help_text="The schema version the backward command leaves.")
    version_command = ArrayField(models.CharField(max_length=500), default=list, blank=True,
                                 help_text="A command printing the schema version in force, to tell whether an "
                                           "interrupted migration happened.")
    timeout_seconds = models.PositiveIntegerField(default=600)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(backward=[], backward_schema_version="")
                                   | (~models.Q(backward=[]) & ~models.Q(backward_schema_version="")),
                                   name="migration_backward_names_its_version"),
            models.CheckConstraint(condition=models.Q(timeout_seconds__gte=1,
                                                      timeout_seconds__lte=LONGEST_STEP_SECONDS),
                                   name="migration_timeout_within_longest_step"),
        ]

    def __str__(self) -> str:
        return f"{self.plan}: migration to {self.forward_schema_version}"


class StepKind(models.TextChoices):
    MANUAL_GATE = "manual_gate", "Approval of the wave"
    PRE_CHECK = "pre_check", "Checks before the wave"
    MIGRATE = "migrate", "Database migration"
    ROLLOUT = "rollout", "Rollout"
    SMOKE = "smoke", "Smoke tests"
    WATCH = "watch", "Health watch while baking"
    ROLLBACK_ROLLOUT = "rollback_rollout", "Rollback of the wave"
    ROLLBACK_MIGRATE = "rollback_migrate", "Backward migration"


ROLLBACK_KINDS = (StepKind.ROLLBACK_ROLLOUT, StepKind.ROLLBACK_MIGRATE)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class RolloutStep(models.Model):
    """One step of a deployment Changeboard runs, in order. A worker holds it by a lease; `attempt` is the fencing
    token, so a worker whose lease ran out cannot record a result over the one that took the step over."""

    # Output kept per step; the rest is counted, not stored.
    OUTPUT_LIMIT = 64 * 1024

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="steps")
    sequence = models.PositiveSmallIntegerField()
    wave_position = models.PositiveSmallIntegerField()
    wave_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    targets = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    unsafe_to_repeat = models.BooleanField(default=False, help_text="Interrupted, it is checked, not run again.")
    idempotency_key = models.CharField(max_length=80, unique=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    output = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["deployment", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "sequence"], name="rollout_step_sequence_once"),
            models.CheckConstraint(condition=~models.Q(state="running") | models.Q(lease_expires_at__isnull=False),
                                   name="rollout_step_running_holds_lease"),
        ]
        indexes = [
            # The beat job's search for steps whose worker stopped heart-beating.
            models.Index(fields=["lease_expires_at"], condition=models.Q(state="running"),
                         name="rollout_step_lease_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id}#{self.sequence} {self.kind} ({self.wave_name})"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at
