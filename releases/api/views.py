from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance.core.api_permissions import ApiPermission
from governance.core.credentials import request_scope
from governance.core.serializers import validated
from releases import selectors, services
from releases.api.serializers import (
    ArtifactRegistrationSerializer,
    ArtifactSerializer,
    PromotionRequestSerializer,
    PromotionSerializer,
    ScanSerializer,
    TrustedKeySerializer,
)
from releases.filters import ArtifactFilter
from releases.models import Artifact, TrustedKey
from releases.permissions import can_view_releases


class CanReadReleases(ApiPermission):
    def allows(self, request, view) -> bool:
        return can_view_releases(request.user)


class ArtifactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Builds, registered once by digest, with their promotions and scans. Writes go through the services."""

    serializer_class = ArtifactSerializer
    permission_classes = [CanReadReleases]
    lookup_field = "digest"
    lookup_value_regex = r"sha256:[0-9a-f]{64}"
    filterset_class = ArtifactFilter
    search_fields = ["version", "digest", "service__name"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        # Scans and promotions are recorded on the artifact alone: its service is all their checks read.
        if self.action in ("scans", "promotions"):
            return Artifact.objects.select_related("service")
        return selectors.artifacts()

    @extend_schema(request=ArtifactRegistrationSerializer, responses={201: ArtifactSerializer})
    def create(self, request):
        data = validated(ArtifactRegistrationSerializer, request.data)
        artifact = services.artifact_register(actor=request.user, scope=request_scope(request), **data)
        return Response(ArtifactSerializer(self.get_queryset().get(pk=artifact.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=ScanSerializer, responses={201: ScanSerializer})
    @action(detail=True, methods=["post"])
    def scans(self, request, digest=None):
        data = validated(ScanSerializer, request.data)
        scan = services.scan_attach(actor=request.user, scope=request_scope(request), artifact=self.get_object(),
                                    **data)
        return Response(ScanSerializer(scan).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PromotionRequestSerializer, responses={201: PromotionSerializer})
    @action(detail=True, methods=["post"])
    def promotions(self, request, digest=None):
        data = validated(PromotionRequestSerializer, request.data)
        promotion = services.artifact_promote(actor=request.user, scope=request_scope(request),
                                               artifact=self.get_object(), **data)
        return Response(PromotionSerializer(promotion).data, status=status.HTTP_201_CREATED)


class TrustedKeyViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """The Ed25519 keys each team trusts to sign its artifacts."""

    serializer_class = TrustedKeySerializer
    permission_classes = [CanReadReleases]
    queryset = TrustedKey.objects.select_related("team")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.trusted_key_add(actor=self.request.user, team=data["team"],
                                                       name=data["name"], public_key_pem=data["public_key_pem"])
