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


class AuditCheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditCheckpoint
        fields = ["id", "seq", "head_hash", "created_at", "key_id", "signature"]


class PublicKeySerializer(serializers.Serializer):
    algorithm = serializers.CharField()
    key_id = serializers.CharField()
    public_key_pem = serializers.CharField()
    message_format = serializers.CharField()
