"""The audit ledger: captured row changes and explicit events, sealed into a SHA-256 hash chain."""

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone


class ActorKind(models.TextChoices):
    USER = "user", "Person (session)"
    TOKEN = "token", "API token"
    TASK = "task", "Background task"
    SYSTEM = "system", "System (command)"
    DATABASE = "database", "Database session outside Changeboard"
    ANONYMOUS = "anonymous", "Anonymous"


class AuditFields(models.Model):
    """What an event says; shared by the capture queue and the sealed ledger."""

    occurred_at = models.DateTimeField(default=timezone.now)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="The acting user's id, if any.")
    actor_name = models.CharField(max_length=200, blank=True)
    token_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    object_label = models.CharField(max_length=300, blank=True)
    changes = models.JSONField(default=dict, blank=True, help_text='{"field": {"before": ..., "after": ...}}')
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=45, blank=True)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class AuditCapture(AuditFields):
    """An event written in the same transaction as the change it describes, waiting to be sealed.

    Capturing is a plain insert with no lock, so audited writes never queue behind each other; the
    sealer moves committed captures into the ledger in its own transaction.
    """

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"pending {self.action} {self.object_type} {self.object_label}".strip()


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("The audit ledger is append-only.")

    def delete(self):
        raise PermissionError("The audit ledger is append-only.")


class AuditEvent(AuditFields):
    """A sealed ledger event, bound to the one before it: hash = SHA-256(prev_hash, canonical event)."""

    seq = models.BigIntegerField(primary_key=True)
    sealed_at = models.DateTimeField(default=timezone.now)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        permissions = [("export_auditevent", "Can export audit evidence")]
        # Every index slows sealing down: only what the search page and object histories need.
        indexes = [
            models.Index(fields=["object_type", "object_id", "-seq"], name="audit_object_history"),
            models.Index(fields=["actor_name", "-seq"], name="audit_actor"),
            models.Index(fields=["action", "-seq"], name="audit_action"),
            # Events are appended in time order, so a BRIN index serves time ranges for almost no upkeep.
            BrinIndex(fields=["occurred_at"], name="audit_occurred_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type} {self.object_label}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("The audit ledger is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit ledger is append-only.")


class AuditCheckpoint(models.Model):
    """The head of the chain at a moment, signed with the Ed25519 key kept outside the database."""

    seq = models.BigIntegerField(help_text="Sequence number of the last event covered.")
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=64, help_text="SHA-256 fingerprint of the signing public key.")
    signature = models.CharField(max_length=128, help_text="Ed25519 signature, hex.")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-seq", "-id"]
        get_latest_by = "seq"

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit checkpoints are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit checkpoints are append-only.")
