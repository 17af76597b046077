"""How software ships: artifacts built once, their signatures and scans, and their promotion through the
environments of the chain."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
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
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABANDONED = "abandoned", "Ended by hand"


class NextDeploymentNumber(models.Func):
    """DEP0000045 from a sequence of its own."""

    template = "'DEP' || lpad(nextval('releases_deployment_number')::text, 7, '0')"
    output_field = models.CharField()


class Deployment(models.Model):
    """What actually ran: an artifact of a service deployed to an environment, as the pipeline reported it."""

    number = models.CharField(max_length=12, unique=True, db_default=NextDeploymentNumber(), editable=False)
    service = models.ForeignKey(ConfigurationItem, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="deployments")
    status = models.CharField(max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.STARTED)
    change_number = models.CharField(max_length=12, blank=True)
    check_id = models.UUIDField(help_text="The gate check that allowed it.")
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One deployment at a time holds a service in an environment: a second one racing in is refused.
            models.UniqueConstraint(fields=["service", "environment"], condition=models.Q(status="started"),
                                    name="deployment_holds_environment"),
            models.UniqueConstraint(fields=["check_id"], name="deployment_once_per_check"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.service} {self.artifact.version} -> {self.environment}"

    @property
    def is_running(self) -> bool:
        """Started and not yet ended: it holds its service in its environment."""
        return self.status == DeploymentStatus.STARTED


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
