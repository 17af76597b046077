from datetime import UTC

from rest_framework import serializers

from governance.models import AuditCheckpoint, AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "seq", "occurred_at", "sealed_at", "actor_kind", "actor_id", "actor_name", "token_id", "action",
            "object_type", "object_id", "object_label", "changes", "request_id", "client_ip", "context",
            "prev_hash", "hash",
        ]


class SignedTimeField(serializers.DateTimeField):
    """A time written exactly as a checkpoint signature covers it: ISO 8601 in UTC, microseconds, +00:00.

    DRF's default ("...Z", microseconds dropped when zero) is ISO 8601 too, but not the signed text, so an
    auditor who joined the fields as the message format says would fail to verify a good signature.
    """

    def to_representation(self, value):
        return value.astimezone(UTC).isoformat(timespec="microseconds")


class AuditCheckpointSerializer(serializers.ModelSerializer):
    created_at = SignedTimeField(read_only=True)

    class Meta:
        model = AuditCheckpoint
        fields = ["id", "seq", "head_hash", "created_at", "key_id", "signature"]


class PublicKeySerializer(serializers.Serializer):
    algorithm = serializers.CharField()
    key_id = serializers.CharField()
    public_key_pem = serializers.CharField()
    message_format = serializers.CharField()
