"""Input and output shapes of the changes API. Input serializers check types and look names up; the services
decide every rule."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.db import transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cmdb.api.serializers import CINameField
from cmdb.choices import Criticality
from cmdb.models import ConfigurationItem, Environment
from governance.calendar.api.serializers import SpanSerializer
from governance.changes.selectors import approval_checklist, change_conflicts
from governance.changes.services import EDITABLE_FIELDS
from governance.core.serializers import InputModelSerializer, InputSerializer, LookupField, ModelRulesSerializer
from governance.models.changes import (
    Approval,
    ApprovalPolicy,
    ChangeRequest,
    ChangeStatus,
    ChangeStatusChange,
    Decision,
    PolicyRequirement,
    StandardChangeTemplate,
)
from governance.roles import ApproverRoleField

# Reading


class ChangeRequestSerializer(serializers.ModelSerializer):
    """A change as a row of a list."""

    requester: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True)
    implementer: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True,
        help_text="Who implements the change; null until one is named.")
    environment: "serializers.SlugRelatedField[Environment]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True)
    template: "serializers.SlugRelatedField[StandardChangeTemplate]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True)
    affected_cis: "serializers.SlugRelatedField[ConfigurationItem]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    awaiting_me = serializers.BooleanField(read_only=True, default=False,
                                           help_text="The change awaits an approval from you.")

    class Meta:
        model = ChangeRequest
        fields = [
            "number", "title", "change_type", "status", "requester", "implementer", "environment", "template",
            "affected_cis", "planned_start", "planned_end", "risk_score", "risk_level", "awaiting_me",
            "created_at", "updated_at",
        ]
        read_only_fields = fields


class ApprovalSerializer(serializers.ModelSerializer):
    approver: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True)
    role: "serializers.SlugRelatedField[Group]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True)
    counts = serializers.SerializerMethodField(help_text="Given for the change's current revision.")

    class Meta:
        model = Approval
        fields = ["id", "approver", "decision", "role", "comment", "revision", "counts", "created_at"]
        read_only_fields = fields

    def get_counts(self, approval: Approval) -> bool:
        change = self.context.get("change") or approval.change
        return approval.revision == change.revision


class ApprovalResultSerializer(ApprovalSerializer):
    change_status = serializers.CharField(source="change.status", read_only=True,
                                          help_text="The change's status after this decision.")

    class Meta(ApprovalSerializer.Meta):
        fields = [*ApprovalSerializer.Meta.fields, "change_status"]
        read_only_fields = fields


class ChecklistItemSerializer(serializers.Serializer):
    role = serializers.CharField()
    needed = serializers.IntegerField()
    given = serializers.IntegerField()
    done = serializers.BooleanField()
    policies = serializers.ListField(child=serializers.CharField(), help_text="The policies that asked for it.")
    approvals = ApprovalSerializer(many=True)


class ConflictSerializer(serializers.Serializer):
    number = serializers.CharField()
    title = serializers.CharField()


class StatusChangeSerializer(serializers.ModelSerializer):
    actor: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True,
        help_text="Empty when Changeboard itself moved the change.")

    class Meta:
        model = ChangeStatusChange
        fields = ["from_status", "to_status", "actor", "reason", "at"]
        read_only_fields = fields


class ChangeRequestDetailSerializer(ChangeRequestSerializer):
    """A change with what an approver needs: risk and why, what is still to approve, conflicts, history."""

    requirements = serializers.SerializerMethodField()
    conflicts = serializers.SerializerMethodField()
    status_history = StatusChangeSerializer(source="status_changes", many=True, read_only=True)

    class Meta(ChangeRequestSerializer.Meta):
        fields = [
            *ChangeRequestSerializer.Meta.fields, "description", "implementation_plan", "test_evidence",
            "backout_plan", "rollback_error_rate_pct", "rollback_latency_p99_ms", "rollback_failed_health_checks",
            "release_strategy", "strategy_reason", "feature_flags", "pinned_digests", "rolls_back", "risk_factors",
            "recommended_strategy", "recommended_strategy_reason", "template_version",
            "revision", "approved_at", "retrospective_due", "retrospective_done_at", "retrospective_notes",
            "requirements", "conflicts", "status_history",
        ]
        read_only_fields = fields

    @extend_schema_field(ChecklistItemSerializer(many=True))
    def get_requirements(self, change: ChangeRequest) -> list:
        # many=True makes a ListSerializer, whose data is a list; the stubs type every serializer's data as a dict.
        return ChecklistItemSerializer(  # type: ignore[return-value]
            approval_checklist(change), many=True, context={"change": change}).data

    @extend_schema_field(ConflictSerializer(many=True))
    def get_conflicts(self, change: ChangeRequest) -> list:
        # As above: a list, which the stubs miss.
        return ConflictSerializer(change_conflicts(change).values("number", "title"), many=True).data  # type: ignore[return-value]


class StandardChangeTemplateSerializer(serializers.ModelSerializer):
    """A standard change model: what it covers, its version, and whether (and by whom) that version is approved."""

    cis: "serializers.SlugRelatedField[ConfigurationItem]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    environments: "serializers.SlugRelatedField[Environment]" = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True)
    edited_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True,
        help_text="Who made this version; they cannot approve it.")
    approved_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True,
        help_text="Empty until this version is approved.")
    approved = serializers.BooleanField(read_only=True, help_text="Changes may be raised from this version.")

    class Meta:
        model = StandardChangeTemplate
        fields = ["id", "name", "description", "implementation_plan", "backout_plan", "active", "ci_types", "cis",
                  "environments", "max_risk_level", "version", "edited_by", "edited_at", "approved", "approved_by",
                  "approved_at"]
        read_only_fields = fields


# Writing


class ChangeRequestInputSerializer(InputModelSerializer):
    """What a requester may set; CIs, environment, implementer and template are given by name."""

    affected_cis = CINameField(many=True, required=False)  # at most MAX_NAMES_PER_LIST, refused before any lookup
    environment = LookupField(slug_field="name", queryset=Environment.objects.all(), required=False, allow_null=True)
    implementer = LookupField(slug_field="username", queryset=get_user_model().objects.filter(is_active=True),
                              required=False, allow_null=True, help_text="The implementer's user name, or null.")
    template = LookupField(slug_field="name", queryset=StandardChangeTemplate.objects.filter(active=True),
                           required=False, allow_null=True)

    class Meta:
        model = ChangeRequest
        fields = [*EDITABLE_FIELDS, "affected_cis"]


class TransitionInputSerializer(InputSerializer):
    target = serializers.ChoiceField(choices=ChangeStatus.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ApprovalInputSerializer(InputSerializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    # Blank is refused for a rejection by the approval service (400, field `comment`), the rule every door follows.
    comment = serializers.CharField(required=False, allow_blank=True, default="",
                                    help_text="Why; required to reject (the requester is told).")


class RetrospectiveInputSerializer(InputSerializer):
    notes = serializers.CharField(allow_blank=True, trim_whitespace=False)


# Approval policies: plain configuration, written through the serializer like the CMDB's CRUD.


class PolicyRequirementSerializer(InputModelSerializer):
    role = ApproverRoleField()
    # The bounds of the policy_count_1_to_10 constraint, checked here so the error names the field.
    count = serializers.IntegerField(min_value=1, max_value=10, default=1)

    class Meta:
        model = PolicyRequirement
        fields = ["role", "count"]

    def validate(self, attrs):
        # A policy's requirements are replaced whole, so each names its role even when the policy is patched
        # (DRF skips a nested field's missing required values in a partial update).
        if "role" not in attrs:
            raise serializers.ValidationError({"role": [serializers.ErrorDetail(
                self.fields["role"].error_messages["required"], code="required")]})
        return attrs


class ApprovalPolicySerializer(ModelRulesSerializer):
    requirements = PolicyRequirementSerializer(many=True, allow_empty=False)
    environments = LookupField(slug_field="name", queryset=Environment.objects.all(), many=True, required=False)
    max_criticality = serializers.ChoiceField(choices=Criticality.choices, required=False, allow_null=True)

    class Meta:
        model = ApprovalPolicy
        fields = [
            "id", "name", "description", "active", "risk_levels", "change_types", "production_only",
            "environments", "max_criticality", "tags", "sox_scoped", "phi", "pci", "requirements",
        ]

    def validate_requirements(self, requirements: list[dict]) -> list[dict]:
        roles = [item["role"].name for item in requirements]
        if len(roles) != len(set(roles)):
            raise serializers.ValidationError("Name each role once.")
        return requirements

    def validate(self, attrs):
        # The model rules run on the policy's own fields; its requirements are rows of their own.
        requirements = attrs.pop("requirements", None)
        attrs = super().validate(attrs)
        if requirements is not None:
            attrs["requirements"] = requirements
        return attrs

    @transaction.atomic
    def create(self, validated_data):
        requirements = validated_data.pop("requirements")
        policy = super().create(validated_data)
        PolicyRequirement.objects.bulk_create([PolicyRequirement(policy=policy, **item) for item in requirements])
        return policy

    @transaction.atomic
    def update(self, instance, validated_data):
        requirements = validated_data.pop("requirements", None)
        policy = super().update(instance, validated_data)
        if requirements is not None:
            policy.requirements.all().delete()
            PolicyRequirement.objects.bulk_create([PolicyRequirement(policy=policy, **item)
                                                   for item in requirements])
        return policy


class SlotsSerializer(serializers.Serializer):
    change = serializers.CharField()
    slots = SpanSerializer(many=True)
