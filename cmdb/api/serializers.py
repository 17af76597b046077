from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from cmdb.choices import CIType, RelationshipType
from cmdb.models import ConfigurationItem, Environment, Relationship, Team, name_validator
from cmdb.selectors import cis_named
from governance.core.serializers import LookupField, ModelRulesSerializer, StorableJSONObjectField


class TeamSerializer(ModelRulesSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "slug", "email", "description"]


class EnvironmentSerializer(ModelRulesSerializer):
    owner_team = LookupField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Environment
        fields = ["id", "name", "position", "is_production", "region", "owner_team"]


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "maxLength": 50}})
class GitHubEnvironmentsField(StorableJSONObjectField):
    """GitHub environment names, each to a Changeboard environment's: the schema says so, where a model's JSONField
    is any JSON; the CI's clean() checks the names."""


class ConfigurationItemSerializer(ModelRulesSerializer):
    type = serializers.ChoiceField(source="ci_type", choices=CIType.choices)
    owner_team = LookupField(slug_field="slug", queryset=Team.objects.all())
    environment = LookupField(slug_field="name", queryset=Environment.objects.all(), required=False, allow_null=True)
    github_environments = GitHubEnvironmentsField(
        required=False, help_text=ConfigurationItem._meta.get_field("github_environments").help_text)

    class Meta:
        model = ConfigurationItem
        fields = [
            "id", "name", "type", "criticality", "owner_team", "lifecycle_status", "environment", "region",
            "tags", "sox_scoped", "phi", "pci", "compliance_reason", "description", "attributes",
            "github_repository", "github_environments", "health_url", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        # The database's unique index is on lower(name); without this its violation names no field.
        extra_kwargs = {"name": {"validators": [name_validator, UniqueValidator(
            ConfigurationItem.objects.all(), lookup="iexact",
            message="A configuration item with this name already exists (names ignore case).",
        )]}}


class CINameField(LookupField):
    """A CI given by its name, whatever the case: names identify CIs ignoring case (ci_name_unique_ci)."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="name", queryset=ConfigurationItem.objects.all(), **kwargs)

    def find(self, keys: list[str]) -> tuple[list[ConfigurationItem], list[str]]:
        return cis_named(keys)


class RelationshipSerializer(ModelRulesSerializer):
    # DRF's metaclass takes declared fields off the class, so this does not shadow Field.source as the stubs think.
    source = CINameField()  # type: ignore[assignment]
    target = CINameField()
    type = serializers.ChoiceField(source="rel_type", choices=RelationshipType.choices)

    class Meta:
        model = Relationship
        fields = ["id", "source", "target", "type", "created_at"]
        read_only_fields = ["created_at"]


class CIRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField(source="ci_type")
    criticality = serializers.IntegerField()
    owner_team = serializers.CharField(source="owner_team.slug")


class ImpactEntrySerializer(serializers.Serializer):
    ci = CIRefSerializer()
    depth = serializers.IntegerField()
    path = serializers.ListField(child=serializers.CharField(), help_text="CI names from the root to this CI.")


class ImpactSerializer(serializers.Serializer):
    ci = CIRefSerializer()
    dependents_count = serializers.IntegerField(help_text="Size of the blast radius.")
    dependents = ImpactEntrySerializer(many=True, help_text="CIs that transitively depend on this CI.")
    dependencies = ImpactEntrySerializer(many=True, help_text="CIs this CI transitively depends on.")


class ImportResultSerializer(serializers.Serializer):
    cis_created = serializers.IntegerField()
    cis_updated = serializers.IntegerField()
    cis_unchanged = serializers.IntegerField()
    relationships_created = serializers.IntegerField()
    relationships_existing = serializers.IntegerField()
