from rest_framework import serializers

from cmdb.api.serializers import CINameField
from cmdb.models import Environment, Team
from governance.core.serializers import InputModelSerializer, InputSerializer, LookupField, StorableJSONObjectField
from releases.models import (
    Artifact,
    Promotion,
    ScanResult,
    TrustedKey,
    digest_validator,
    signature_validator,
    source_commit_validator,
)


class PromotionSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.name")

    class Meta:
        model = Promotion
        fields = ["environment", "passed_at"]


class ScanSerializer(InputModelSerializer):
    class Meta:
        model = ScanResult
        fields = ["id", "kind", "tool", "verdict", "critical", "high", "medium", "low", "report_url", "scanned_at"]
        read_only_fields = ["scanned_at"]


class ArtifactSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    created_by = serializers.CharField(source="created_by.username")
    signed_by = serializers.CharField(source="signed_by.name", default=None)
    promotions = PromotionSerializer(many=True, source="passed", help_text="In the order of the chain.")
    scans = ScanSerializer(many=True)

    class Meta:
        model = Artifact
        fields = ["id", "service", "version", "digest", "source_commit", "build_url", "created_by", "created_at",
                  "signature_status", "signed_by", "provenance", "promotions", "scans"]


class ArtifactRegistrationSerializer(InputSerializer):
    service = CINameField()
    version = serializers.CharField(max_length=100)
    digest = serializers.CharField(max_length=71, validators=[digest_validator])
    source_commit = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                          validators=[source_commit_validator])
    build_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    signature = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                      validators=[signature_validator])
    provenance = StorableJSONObjectField(required=False)


class PromotionRequestSerializer(InputSerializer):
    environment = LookupField(slug_field="name", queryset=Environment.objects.all())


class TrustedKeySerializer(InputModelSerializer):
    team = LookupField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = TrustedKey
        fields = ["id", "team", "name", "public_key_pem", "key_id", "created_at", "revoked_at"]
        read_only_fields = ["key_id", "created_at", "revoked_at"]
