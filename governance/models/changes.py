"""Change requests, the approvals they need, and the CAB meetings that review them."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from cmdb.choices import CIType
from cmdb.models import ConfigurationItem, Environment
from releases.models import digest_validator


class ChangeType(models.TextChoices):
    STANDARD = "standard", "Standard (pre-approved)"
    NORMAL = "normal", "Normal"
    EMERGENCY = "emergency", "Emergency"


class ChangeStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    ASSESSED = "assessed", "Assessed"
    CAB_REVIEW = "cab_review", "CAB review"
    APPROVED = "approved", "Approved"
    SCHEDULED = "scheduled", "Scheduled"
    IMPLEMENTING = "implementing", "Implementing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CLOSED = "closed", "Closed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# The groups of states the rest of Changeboard speaks of, named once; changes/workflow.py moves between them.
# Not yet under way: the change may still be edited, or cancelled.
OPEN_STATES = (ChangeStatus.DRAFT, ChangeStatus.SUBMITTED, ChangeStatus.ASSESSED, ChangeStatus.CAB_REVIEW,
               ChangeStatus.APPROVED, ChangeStatus.SCHEDULED)
# Approved and not yet under way: a change of what was approved sends it back to review.
READY_STATES = (ChangeStatus.APPROVED, ChangeStatus.SCHEDULED)
# Approved and not yet done: it may deploy, a lockdown holds it, calendar feeds show it.
APPROVED_STATES = (*READY_STATES, ChangeStatus.IMPLEMENTING)
# Submitted and not yet done: the CAB queue's changes, and those in another change's way.
ACTIVE_STATES = (ChangeStatus.SUBMITTED, ChangeStatus.ASSESSED, ChangeStatus.CAB_REVIEW, *APPROVED_STATES)
# What the release calendar shows: approved changes, and those the CAB is about to decide.
CALENDAR_STATES = (*APPROVED_STATES, ChangeStatus.CAB_REVIEW)


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ReleaseStrategy(models.TextChoices):
    CANARY = "canary", "Canary"
    BLUE_GREEN = "blue_green", "Blue-green"
    ROLLING = "rolling", "Rolling"


class NextChangeNumber(models.Func):
    """CHG0000123 from a sequence of its own, so numbers are never reused or guessed from ids."""

    template = "'CHG' || lpad(nextval('governance_change_number')::text, 7, '0')"
    output_field = models.CharField()


class StandardChangeTemplate(models.Model):
    """A pre-approved, repeatable change model: a change that fits its scope needs no CAB, once the model itself
    is approved at its current version."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    implementation_plan = models.TextField(blank=True)
    backout_plan = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    # The scope: each affected CI must be of one of these types or be one of these CIs (the services this
    # model is for), in one of these environments, at no more than this risk. An empty scope fits nothing.
    ci_types = ArrayField(models.CharField(max_length=20, choices=CIType.choices), default=list, blank=True,
                          verbose_name="CI types", help_text="Affected CIs of these types fit.")
    cis = models.ManyToManyField(ConfigurationItem, blank=True, related_name="+", verbose_name="CIs",
                                 help_text="These CIs fit whatever their type, e.g. the services it is for.")
    environments = models.ManyToManyField(Environment, blank=True, related_name="+",
                                          help_text="The environments it may be used in.")
    max_risk_level = models.CharField("maximum risk", max_length=20, choices=RiskLevel.choices,
                                      default=RiskLevel.LOW, help_text="A riskier change is not standard.")
    # Bumped by every edit of what was approved (see governance.changes.standard), which clears the approval.
    version = models.PositiveIntegerField(default=1)
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", help_text="Who made this version; they cannot approve it.")
    edited_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+", help_text="Who approved this version.")
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_risk_level__in=RiskLevel.values),
                                   name="template_max_risk_known"),
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True, approved_at__isnull=True)
                | models.Q(approved_by__isnull=False, approved_at__isnull=False),
                name="template_approval_has_approver_and_time"),
            # Segregation of duties held by the database too: nobody approves the version they wrote.
            models.CheckConstraint(condition=~models.Q(approved_by=models.F("edited_by")),
                                   name="template_not_approved_by_its_editor"),
        ]
        permissions = [("approve_standardchangetemplate", "Can approve a standard change template")]

    def __str__(self) -> str:
        return self.name

    @property
    def approved(self) -> bool:
        return self.approved_by_id is not None


class ChangeRequest(models.Model):
    """A request to change something in the estate, from draft to closed."""

    number = models.CharField(max_length=12, unique=True, db_default=NextChangeNumber(), editable=False)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    change_type = models.CharField(max_length=20, choices=ChangeType.choices, default=ChangeType.NORMAL)
    status = models.CharField(max_length=20, choices=ChangeStatus.choices, default=ChangeStatus.DRAFT)
    template = models.ForeignKey(StandardChangeTemplate, null=True, blank=True, on_delete=models.PROTECT)
    template_version = models.PositiveIntegerField(null=True, blank=True, editable=False,
                                                   help_text="The version of the template that approved it.")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    implementer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    affected_cis = models.ManyToManyField(ConfigurationItem, related_name="change_requests", blank=True)
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    planned_start = models.DateTimeField(null=True, blank=True)
    planned_end = models.DateTimeField(null=True, blank=True)
    implementation_plan = models.TextField(blank=True)
    test_evidence = models.TextField(blank=True, help_text="Links, results or notes showing the change was tested.")
    backout_plan = models.TextField(blank=True)
    rollback_error_rate_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    rollback_latency_p99_ms = models.PositiveIntegerField(null=True, blank=True)
    rollback_failed_health_checks = models.PositiveSmallIntegerField(null=True, blank=True)
    release_strategy = models.CharField(max_length=20, choices=ReleaseStrategy.choices, blank=True)
    strategy_reason = models.TextField(blank=True)
    feature_flags = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    # An approval covers these builds only, so it cannot be reused for another one.
    pinned_digests = ArrayField(models.CharField(max_length=71, validators=[digest_validator]), default=list,
                                blank=True, help_text="Artifact digests this change is approved for; none means any.")
    rolls_back = models.BooleanField("rollback", default=False,
                                     help_text="Returns to an earlier build: the gate lets an older artifact through.")
    # Set by the risk assessment; kept so that queues and evidence show what approvers saw.
    risk_score = models.PositiveSmallIntegerField(null=True, blank=True)
    risk_level = models.CharField(max_length=20, choices=RiskLevel.choices, blank=True)
    risk_factors = models.JSONField(default=list, blank=True)
    recommended_strategy = models.CharField(max_length=20, choices=ReleaseStrategy.choices, blank=True)
    recommended_strategy_reason = models.CharField(max_length=300, blank=True)
    # The strictest flags, tiers and tags its CIs had since submission: approvals follow these, not a later
    # lowering.
    compliance_at_submission = models.JSONField(
        default=dict, blank=True,
        help_text='The strictest compliance flags, tier and tags of each CI since the change was submitted: '
                  '{"<ci id>": {"sox_scoped": ..., "pci": ..., "phi": ..., "criticality": ..., "tags": [...]}}.')
    # The affected CIs and their blast radius at assessment: conflicts are an overlap of these arrays.
    impacted_ci_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # Bumped when what was approved changes (CIs, environment, window): older approvals stop counting.
    revision = models.PositiveIntegerField(default=1)
    approved_at = models.DateTimeField(null=True, blank=True)
    retrospective_due = models.DateTimeField(null=True, blank=True)
    retrospective_done_at = models.DateTimeField(null=True, blank=True)
    retrospective_notes = models.TextField(blank=True)
    held_by = models.ForeignKey("governance.Lockdown", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="held_changes", help_text="A lockdown holding this change.")
    review_requested_at = models.DateTimeField(null=True, blank=True)
    last_reminder_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=ChangeStatus.values), name="change_status_known"),
            models.CheckConstraint(condition=models.Q(change_type__in=ChangeType.values), name="change_type_known"),
            models.CheckConstraint(
                condition=models.Q(planned_start__isnull=True) | models.Q(planned_end__isnull=True)
                | models.Q(planned_end__gt=models.F("planned_start")),
                name="change_window_ends_after_start",
                violation_error_message="The window must end after it starts.",
            ),
            models.CheckConstraint(
                condition=~models.Q(change_type=ChangeType.STANDARD) | models.Q(template__isnull=False)
                | models.Q(status=ChangeStatus.DRAFT),
                name="standard_change_has_template",
                violation_error_message="A standard change is raised from a pre-approved template.",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "planned_start"], name="change_status_window"),
            GinIndex(fields=["impacted_ci_ids"], name="change_impacted_cis"),
        ]
        permissions = [("manage_changes", "Can schedule, reschedule and close any change")]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    def clean(self) -> None:
        # change_window_ends_after_start holds this in the database; here the error names the field at fault
        # (full_clean then skips the constraint, so the message is not given twice).
        if self.planned_start and self.planned_end and self.planned_end <= self.planned_start:
            raise ValidationError({"planned_end": "The window must end after it starts."})

    @property
    def retrospective_overdue(self) -> bool:
        return (self.retrospective_due is not None and self.retrospective_done_at is None
                and self.retrospective_due < timezone.now())


class ChangeStatusChange(models.Model):
    """One move of a change through its lifecycle: who, when, from where to where, and why."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=ChangeStatus.choices)
    to_status = models.CharField(max_length=20, choices=ChangeStatus.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", help_text="Empty when Changeboard itself moved it.")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.change_id}: {self.from_status} -> {self.to_status}"


class ApprovalPolicy(models.Model):
    """When a change matches every condition set here, it needs the approvals listed in `requirements`."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    risk_levels = ArrayField(models.CharField(max_length=20, choices=RiskLevel.choices), default=list, blank=True,
                             help_text="Any of these risk levels; empty for any.")
    change_types = ArrayField(models.CharField(max_length=20, choices=ChangeType.choices), default=list, blank=True,
                              help_text="Any of these change types; empty for any.")
    production_only = models.BooleanField(default=False, help_text="Only changes to a production environment.")
    environments = models.ManyToManyField(Environment, blank=True, help_text="Any of these; none for any.")
    max_criticality = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Only when an affected CI is of this tier or more critical (1 is highest)."
    )
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True,
                      help_text="An affected CI carries any of these tags; empty for any.")
    sox_scoped = models.BooleanField(default=False, help_text="Only when an affected CI is SOX scoped.")
    phi = models.BooleanField(default=False, help_text="Only when an affected CI holds PHI.")
    pci = models.BooleanField(default=False, help_text="Only when an affected CI is PCI scoped.")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_criticality__isnull=True)
                | models.Q(max_criticality__gte=1, max_criticality__lte=4),
                name="policy_criticality_tier_1_to_4",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PolicyRequirement(models.Model):
    """`count` approvals from people holding `role`."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="requirements")
    role = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    count = models.PositiveSmallIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "role"], name="policy_requirement_unique_role"),
            models.CheckConstraint(condition=models.Q(count__gte=1, count__lte=10), name="policy_count_1_to_10"),
        ]

    def __str__(self) -> str:
        return f"{self.count} x {self.role.name}"


class ApprovalRequirement(models.Model):
    """What a change needs at its current revision: `count` approvals from `role`, and which policies said so."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="requirements")
    role = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    count = models.PositiveSmallIntegerField()
    policies = ArrayField(models.CharField(max_length=200), default=list)
    revision = models.PositiveIntegerField()

    class Meta:
        ordering = ["role__name"]
        constraints = [
            models.UniqueConstraint(fields=["change", "revision", "role"], name="requirement_unique_role"),
        ]

    def __str__(self) -> str:
        return f"{self.change_id} r{self.revision}: {self.count} x {self.role_id}"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Approval(models.Model):
    """One approver's decision on one revision of a change, counted toward one role."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    role = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    revision = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One decision per person per revision: a double submit cannot count twice.
            models.UniqueConstraint(fields=["change", "revision", "approver"], name="approval_once_per_revision"),
            models.CheckConstraint(condition=models.Q(decision__in=Decision.values), name="approval_decision_known"),
        ]

    def __str__(self) -> str:
        return f"{self.change_id} r{self.revision}: {self.decision} by {self.approver_id}"


class CabMeeting(models.Model):
    """A meeting of the change advisory board: its agenda, attendees, decisions and minutes."""

    title = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    organiser = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    attendees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="cab_meetings")
    minutes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"{self.title} ({self.starts_at:%Y-%m-%d %H:%M})"


class CabAgendaItem(models.Model):
    """A change on a meeting's agenda, with what the meeting decided about it."""

    meeting = models.ForeignKey(CabMeeting, on_delete=models.CASCADE, related_name="agenda")
    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="agenda_items")
    position = models.PositiveSmallIntegerField(default=0)
    outcome = models.CharField(max_length=20, blank=True, help_text="approved, rejected, deferred, ...")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["meeting", "change"], name="agenda_change_once")]

    def __str__(self) -> str:
        return f"{self.meeting_id}: {self.change_id}"
