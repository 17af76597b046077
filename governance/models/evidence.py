"""What the auditor's workspace keeps: the evidence bundles built for a period and scope, the samples drawn from a
population by a recorded seed, and the auditor's own notes on an exception (the only thing an auditor writes)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class EvidenceScope(models.TextChoices):
    ALL = "all", "All production changes"
    SOX = "sox", "SOX-scoped CIs"
    PHI = "phi", "CIs holding PHI"


class EvidenceBundle(models.Model):
    """A signed zip of a period's evidence, built by a worker; the file lives on disk, its hash and manifest here."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    scope = models.CharField(max_length=10, choices=EvidenceScope.choices, default=EvidenceScope.ALL)
    seed = models.BigIntegerField(help_text="The seed the bundle's sample is drawn with.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Per cent done.")
    stage = models.CharField(max_length=200, blank=True, help_text="What the worker is writing now.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    ledger_head_seq = models.BigIntegerField(null=True, blank=True, help_text="The ledger head it was built from.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(period_end__gt=models.F("period_start")),
                                   name="evidence_bundle_period_ordered"),
        ]

    def __str__(self) -> str:
        return f"evidence bundle {self.pk} ({self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}, {self.scope})"


class AuditSample(models.Model):
    """A sample drawn from a period's population: reproducible from its seed, stratified by risk and change type,
    sized by the rule it names."""

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    scope = models.CharField(max_length=10, choices=EvidenceScope.choices, default=EvidenceScope.ALL)
    seed = models.BigIntegerField()
    rule = models.CharField(max_length=200, help_text="How its size was chosen from the population's.")
    population_size = models.PositiveIntegerField()
    change_numbers = models.JSONField(default=list, help_text="The sampled changes, in the order drawn.")
    drawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    drawn_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-drawn_at", "-id"]

    def __str__(self) -> str:
        return f"sample of {len(self.change_numbers)} (seed {self.seed})"


class AuditorNote(models.Model):
    """An auditor's note on one exception of a period, kept apart from what it is about."""

    exception_key = models.CharField(max_length=200, help_text="The exception's kind and the record it is about, "
                                                              "e.g. approval_after_start:DEP0000045.")
    text = models.TextField(max_length=5000)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["exception_key", "created_at"], name="auditor_note_by_exception")]

    def __str__(self) -> str:
        return f"note on {self.exception_key}"
