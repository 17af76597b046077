"""What keeps Changeboard in step with the ITSM tools customers keep: the outbox of change updates to deliver (written
in the transaction that moved the change), the remote record each change is mirrored to, the incidents brought in,
their likely causes among recent deployments, and the signed webhook deliveries already taken (against replay).
Connectors themselves are configuration (governance/itsm), their credentials environment variables: never rows."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from cmdb.models import ConfigurationItem


class OutboxState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (retries used up)"


class OutboxMessage(models.Model):
    """One update of a change for one connector. Delivered in `sequence` order per connector and change, each at
    most once by the remote thanks to its idempotency key; retried with backoff until `attempts` reaches the limit."""

    connector = models.CharField(max_length=50)
    change = models.ForeignKey("governance.ChangeRequest", on_delete=models.CASCADE, related_name="outbox_messages")
    sequence = models.PositiveIntegerField(help_text="Its place among this change's updates for this connector.")
    event = models.CharField(max_length=40, help_text="What happened to the change: created, status, ...")
    payload = models.JSONField(help_text="The change as the connector maps it, at the moment of the update.")
    idempotency_key = models.CharField(max_length=120, unique=True)
    state = models.CharField(max_length=12, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["connector", "change", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["connector", "change", "sequence"], name="outbox_sequence_once"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.connector}: {self.idempotency_key} ({self.state})"


class ItsmRecord(models.Model):
    """The record a change is mirrored to in a connector's tool: its number and id there."""

    connector = models.CharField(max_length=50)
    change = models.ForeignKey("governance.ChangeRequest", on_delete=models.CASCADE, related_name="itsm_records")
    remote_number = models.CharField(max_length=100, blank=True)
    remote_id = models.CharField(max_length=200)
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["connector", "change"]
        constraints = [models.UniqueConstraint(fields=["connector", "change"], name="itsm_record_once")]

    def __str__(self) -> str:
        return f"{self.connector}: {self.remote_number or self.remote_id}"


class Incident(models.Model):
    """An incident from an ITSM tool; the same one arriving by webhook and by pull is one row."""

    source = models.CharField(max_length=50, help_text="The connector (or webhook sender) it came from.")
    external_id = models.CharField(max_length=200)
    number = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=500)
    priority = models.PositiveSmallIntegerField(help_text="1 (critical) to 5 (planning).")
    state = models.CharField(max_length=50, blank=True)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    affected_cis = models.ManyToManyField(ConfigurationItem, blank=True, related_name="incidents")
    received_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="incident_once_per_source"),
            models.CheckConstraint(condition=models.Q(priority__gte=1, priority__lte=5), name="incident_priority"),
        ]

    def __str__(self) -> str:
        return self.number or f"{self.source}:{self.external_id}"


class SuspectStatus(models.TextChoices):
    SUSPECTED = "suspected", "Suspected"
    CONFIRMED = "confirmed", "Confirmed cause"
    DISMISSED = "dismissed", "Dismissed"


class IncidentSuspect(models.Model):
    """A deployment that may have caused an incident, with its score and the parts it is made of."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="suspects")
    deployment = models.ForeignKey("releases.Deployment", on_delete=models.CASCADE, related_name="suspected_in")
    change_number = models.CharField(max_length=12, blank=True)
    score = models.FloatField()
    parts = models.JSONField(help_text='[{"factor", "detail", "points"}]; the points add up to the score.')
    rank = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=SuspectStatus.choices, default=SuspectStatus.SUSPECTED)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["incident", "rank"]
        constraints = [models.UniqueConstraint(fields=["incident", "deployment"], name="suspect_once")]

    def __str__(self) -> str:
        return f"{self.deployment_id} for {self.incident_id} ({self.score:g})"


class WebhookReceipt(models.Model):
    """A signed delivery already taken: the same signature again is a replay."""

    sender = models.CharField(max_length=50)
    signature = models.CharField(max_length=128)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "signature"], name="webhook_receipt_once")]

    def __str__(self) -> str:
        return f"{self.sender} at {self.received_at:%Y-%m-%d %H:%M:%S}"
