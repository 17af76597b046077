"""The gate: every question a pipeline asked before a deployment, and the answer it got."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment


class GateDecision(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class DeploymentCheck(models.Model):
    """May this artifact of this service go to this environment now, under this change? Asked and answered."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    change = models.ForeignKey("governance.ChangeRequest", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="deployment_checks")
    service = models.ForeignKey(ConfigurationItem, on_delete=models.PROTECT, related_name="+")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    digest = models.CharField(max_length=71)
    artifact = models.ForeignKey("releases.Artifact", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    decision = models.CharField(max_length=10, choices=GateDecision.choices)
    reasons = models.JSONField(default=list, blank=True, help_text='[{"code", "message"}], every reason found.')
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    asked_at = models.DateTimeField(default=timezone.now)
    valid_until = models.DateTimeField()

    class Meta:
        ordering = ["-asked_at"]
        indexes = [models.Index(fields=["service", "environment", "-asked_at"], name="check_service_env")]

    def __str__(self) -> str:
        return f"{self.decision} {self.service} -> {self.environment} ({self.asked_at:%Y-%m-%d %H:%M})"


class GitHubReview(models.Model):
    """A GitHub deployment protection rule request, the check it became, and the answer sent to the run."""

    class State(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    # GitHub's delivery id: a redelivered webhook is the same request, answered once.
    delivery = models.CharField(max_length=64, unique=True)
    repository = models.CharField(max_length=200)
    environment_name = models.CharField(max_length=100)
    sha = models.CharField(max_length=64, blank=True)
    installation_id = models.BigIntegerField()
    # GitHub's deployment of the run, when it has one: its statuses report what ran under this review.
    deployment_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    callback_url = models.URLField(max_length=500)
    gate_check = models.ForeignKey(DeploymentCheck, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    state = models.CharField(max_length=10, choices=State.choices)
    comment = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "GitHub review"

    def __str__(self) -> str:
        return f"{self.repository} {self.environment_name}: {self.state}"
