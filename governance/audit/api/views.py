from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.audit import selectors, signing
from governance.audit.api.serializers import AuditCheckpointSerializer, AuditEventSerializer, PublicKeySerializer
from governance.audit.filters import AuditEventFilter
from governance.audit.ledger import audit_checkpoint_create
from governance.audit.permissions import can_create_checkpoint, can_read_ledger
from governance.core.api_permissions import ApiPermission
from governance.core.errors import Conflict
from governance.models import AuditEvent


class LedgerReader(ApiPermission):
    def allows(self, request, view) -> bool:
        if request.method == "POST":
            return can_create_checkpoint(request.user)
        return can_read_ledger(request.user)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit ledger, newest first. Read-only: nothing, not even an administrator, may change it."""

    serializer_class = AuditEventSerializer
    permission_classes = [LedgerReader]
    filterset_class = AuditEventFilter
    search_fields: list[str] = []
    ordering_fields = ["seq", "occurred_at"]
    lookup_field = "seq"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation must not seal (a write)
            return AuditEvent.objects.none()
        return selectors.audit_events()


class AuditCheckpointViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Signed checkpoints of the chain's head; POST makes one now (it repeats the last if nothing changed)."""

    serializer_class = AuditCheckpointSerializer
    permission_classes = [LedgerReader]
    filter_backends = []

    def get_queryset(self):
        return selectors.audit_checkpoints()

    @extend_schema(request=None, responses={201: AuditCheckpointSerializer})
    def create(self, request, *args, **kwargs):
        checkpoint = audit_checkpoint_create()
        if checkpoint is None:
            raise Conflict("The ledger is empty: there is nothing to sign yet.")
        return Response(AuditCheckpointSerializer(checkpoint).data, status=status.HTTP_201_CREATED)


class PublicKeyView(APIView):
    """The Ed25519 public key that verifies checkpoint signatures; anyone signed in may fetch it."""

    @extend_schema(responses=PublicKeySerializer)
    def get(self, request):
        return Response(PublicKeySerializer(signing.public_key_document()).data)
