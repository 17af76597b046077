"""The release calendar: freezes, maintenance windows, their occurrences, and lockdowns (stop the line)."""

import zoneinfo

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField, DateTimeRangeField
from django.contrib.postgres.indexes import GistIndex
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now

from cmdb.choices import CIType
from cmdb.models import ConfigurationItem, Environment


def validate_timezone(name: str) -> None:
    if name not in zoneinfo.available_timezones():
        raise ValidationError(f"{name!r} is not an IANA time zone (e.g. Europe/London).")


class CalendarScope(models.Model):
    """What a calendar entry covers: everything, or the CIs meeting every condition that is set."""

    everything = models.BooleanField(default=False, help_text="Covers every CI in every environment.")
    environments = models.ManyToManyField(Environment, blank=True, related_name="+")
    cis = models.ManyToManyField(ConfigurationItem, blank=True, related_name="+")
    ci_types = ArrayField(models.CharField(max_length=20, choices=CIType.choices), default=list, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    max_criticality = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="CIs of this tier or more critical (1 is the most critical)."
    )
    sox_scoped = models.BooleanField(default=False)
    phi = models.BooleanField(default=False)
    pci = models.BooleanField(default=False)

    class Meta:
        abstract = True


class Severity(models.TextChoices):
    HARD = "hard", "Hard: only emergency changes approved by the emergency CAB"
    SOFT = "soft", "Soft: allowed with one extra approval"


class Recurrence(models.TextChoices):
    ONCE = "once", "Once"
    RRULE = "rrule", "RFC 5545 recurrence rule"
    LAST_BUSINESS_DAYS_OF_MONTH = "last_bd_month", "Last business days of every month"
    LAST_BUSINESS_DAYS_OF_QUARTER = "last_bd_quarter", "Last business days of every quarter"


class RecurringWindow(CalendarScope):
    """A window in a named time zone: once, by an RFC 5545 rule, or by business days (holidays by region)."""

    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    recurrence = models.CharField(max_length=20, choices=Recurrence.choices, default=Recurrence.ONCE)
    start_date = models.DateField(help_text="First day, in the window's time zone.")
    start_time = models.TimeField(default="00:00")
    duration_minutes = models.PositiveIntegerField(help_text="How long each occurrence lasts.")
    rrule = models.CharField(max_length=500, blank=True, help_text="e.g. FREQ=WEEKLY;BYDAY=FR")
    business_days = models.PositiveSmallIntegerField(default=0, help_text="How many last business days.")
    holiday_region = models.CharField(max_length=10, blank=True, help_text="Country code, e.g. GB or US-NY.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        from governance.calendar.recurrence import recurrence_error

        message = recurrence_error(self)
        if message:
            raise ValidationError({message[0]: message[1]})


class FreezeWindow(RecurringWindow):
    """A period when changes in scope may not go ahead (hard) or need one more approval (soft)."""

    reason = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.HARD)
    extra_approval_role = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT,
                                            related_name="+", help_text="Soft freezes: who gives the extra approval.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(severity="soft") | models.Q(extra_approval_role__isnull=False),
                name="soft_freeze_names_its_approver",
                violation_error_message="A soft freeze names the role that gives the extra approval.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.severity == Severity.SOFT and self.extra_approval_role_id is None:
            raise ValidationError({"extra_approval_role": "A soft freeze names the role that gives the extra "
                                                          "approval."})


class MaintenanceEnforcement(models.TextChoices):
    FLAG = "flag", "Flag changes outside it"
    REFUSE = "refuse", "Refuse changes outside it"


class MaintenanceWindow(RecurringWindow):
    """When changes of some types may be implemented in scope, e.g. production tier 1: Tue and Thu 22:00-02:00."""

    change_types = ArrayField(models.CharField(max_length=20), default=list, blank=True,
                              help_text="Change types it governs; empty for normal changes.")
    enforcement = models.CharField(max_length=10, choices=MaintenanceEnforcement.choices,
                                   default=MaintenanceEnforcement.FLAG)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Occurrence(models.Model):
    """One occurrence of a freeze or maintenance window, in UTC, computed ahead so lookups are an index scan."""

    freeze = models.ForeignKey(FreezeWindow, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="occurrences")
    maintenance = models.ForeignKey(MaintenanceWindow, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="occurrences")
    period = DateTimeRangeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(freeze__isnull=True) ^ models.Q(maintenance__isnull=True),
                name="occurrence_of_one_window",
            ),
        ]
        indexes = [GistIndex(fields=["period"], name="occurrence_period")]  # "covers this instant" lookups

    def __str__(self) -> str:
        return f"{self.freeze or self.maintenance}: {self.period.lower:%Y-%m-%d %H:%M}"


class Lockdown(CalendarScope):
    """Stop the line: from the moment it is declared, nothing in scope is approved, scheduled or deployed."""

    reason = models.TextField()
    declared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    declared_at = models.DateTimeField(default=now)
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: until lifted.")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-declared_at"]
        permissions = [("declare_lockdown", "Can declare and lift a lockdown")]

    def __str__(self) -> str:
        return f"lockdown {self.declared_at:%Y-%m-%d %H:%M}: {self.reason[:60]}"

    @staticmethod
    def in_force_at(at) -> models.Q:
        """The lockdowns in force at `at`: declared by then, and neither lifted nor run out. `at` is a moment or
        an SQL expression (the gate compiles this into its own statement)."""
        return (models.Q(declared_at__lte=at) & (models.Q(lifted_at__isnull=True) | models.Q(lifted_at__gt=at))
                & (models.Q(until__isnull=True) | models.Q(until__gt=at)))


class CalendarFeed(models.Model):
    """A private iCalendar subscription: the secret in its URL is the credential; only its SHA-256 digest is kept."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds")
    team = models.ForeignKey("cmdb.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                             help_text="Empty: the whole calendar; else only what covers this team's CIs.")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters of the secret, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)  # the lookup of every fetch
    created_at = models.DateTimeField(default=now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], condition=models.Q(revoked_at__isnull=True),
                                    name="calendar_feed_name_unique_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at is not None else "active"
