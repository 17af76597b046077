"""Input and output shapes of the calendar API. The window serializers check the model's rules (its clean());
windows, lockdowns and feeds are written by their services."""

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cmdb.api.serializers import CINameField
from cmdb.choices import CIType, Criticality
from cmdb.models import ConfigurationItem, Environment, Team
from governance.calendar.selectors import SCOPE_FIELDS
from governance.core.serializers import InputSerializer, LookupField, ModelRulesSerializer
from governance.models.calendar import CalendarFeed, FreezeWindow, Lockdown, MaintenanceWindow
from governance.roles import ApproverRoleField

WINDOW_FIELDS = ["id", "name", "timezone", "recurrence", "start_date", "start_time", "duration_minutes", "rrule",
                 "business_days", "holiday_region", "active", *SCOPE_FIELDS, "created_at", "next_occurrences"]


class SpanSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class ScopeFields(serializers.Serializer):
    """What an entry covers: everything, or the CIs meeting every condition set. Environments and CIs by name."""

    environments = LookupField(slug_field="name", queryset=Environment.objects.all(), many=True, required=False)
    cis = CINameField(many=True, required=False)
    ci_types = serializers.ListField(child=serializers.ChoiceField(choices=CIType.choices), required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    max_criticality = serializers.ChoiceField(choices=Criticality.choices, required=False, allow_null=True)


class WindowSerializer(ScopeFields, ModelRulesSerializer):
    """Shared by freezes and maintenance windows: a wall-clock window in its own time zone, and what it covers."""

    next_occurrences = serializers.SerializerMethodField(help_text="The next five occurrences, in UTC.")

    class Meta:
        read_only_fields = ["created_at"]

    @extend_schema_field(SpanSerializer(many=True))
    def get_next_occurrences(self, window) -> list:
        """From the stored occurrences the views prefetch (selectors.upcoming_occurrences)."""
        # many=True makes a ListSerializer, whose data is a list; the stubs type every serializer's data as a dict.
        return SpanSerializer([{"start": o.period.lower, "end": o.period.upper}  # type: ignore[return-value]
                               for o in window.upcoming], many=True).data


class FreezeWindowSerializer(WindowSerializer):
    extra_approval_role = ApproverRoleField(required=False, allow_null=True,
                                            help_text="Soft freezes: the approver role asked for one more approval.")

    class Meta(WindowSerializer.Meta):
        model = FreezeWindow
        fields = [*WINDOW_FIELDS[:2], "severity", "extra_approval_role", "reason", *WINDOW_FIELDS[2:]]


class MaintenanceWindowSerializer(WindowSerializer):
    class Meta(WindowSerializer.Meta):
        model = MaintenanceWindow
        fields = [*WINDOW_FIELDS[:2], "change_types", "enforcement", *WINDOW_FIELDS[2:]]


class ActiveFreezeSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="freeze.pk")
    name = serializers.CharField(source="freeze.name")
    severity = serializers.CharField(source="freeze.severity")
    extra_approval_role = serializers.CharField(source="freeze.extra_approval_role.name", default=None)
    reason = serializers.CharField(source="freeze.reason")
    starts = serializers.DateTimeField()
    ends = serializers.DateTimeField()


class LockdownSerializer(serializers.ModelSerializer):
    declared_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True)
    lifted_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True,
        help_text="Who lifted the lockdown; null while it holds.")
    environments: "serializers.SlugRelatedField[Environment]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    cis: "serializers.SlugRelatedField[ConfigurationItem]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    active = serializers.BooleanField(source="in_force", read_only=True)  # in force now

    class Meta:
        model = Lockdown
        fields = ["id", "reason", *SCOPE_FIELDS, "declared_by", "declared_at", "until", "lifted_at", "lifted_by",
                  "lift_reason", "active"]
        read_only_fields = fields


class ActiveAnswerSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    ci = serializers.CharField(allow_null=True)
    environment = serializers.CharField(allow_null=True)
    frozen = serializers.BooleanField(help_text="A hard freeze or a lockdown covers the scope at that time.")
    freezes = ActiveFreezeSerializer(many=True)
    lockdowns = LockdownSerializer(many=True)


class LockdownInputSerializer(ScopeFields, InputSerializer):
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False)
    until = serializers.DateTimeField(required=False, allow_null=True, default=None)
    everything = serializers.BooleanField(required=False, default=False)
    sox_scoped = serializers.BooleanField(required=False, default=False)
    phi = serializers.BooleanField(required=False, default=False)
    pci = serializers.BooleanField(required=False, default=False)


class LiftInputSerializer(InputSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class CalendarFeedSerializer(serializers.ModelSerializer):
    team: "serializers.SlugRelatedField[Team]" = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)

    class Meta:
        model = CalendarFeed
        fields = ["id", "name", "team", "prefix", "status", "created_at", "revoked_at"]
        read_only_fields = fields


class IssuedFeedSerializer(CalendarFeedSerializer):
    url = serializers.CharField(help_text="The feed's address, shown this once: only its digest is kept.")

    class Meta(CalendarFeedSerializer.Meta):
        fields = [*CalendarFeedSerializer.Meta.fields, "url"]
        read_only_fields = fields


class CalendarFeedInputSerializer(InputSerializer):
    name = serializers.CharField(max_length=100)
    team = LookupField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True, default=None,
                       help_text="A team's slug: the feed shows only what covers its CIs.")
