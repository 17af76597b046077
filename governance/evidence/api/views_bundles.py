"""Evidence bundles for GRC tools: POST /audit/bundles/ starts one for a period, scope and seed (those who may export
the ledger); GET lists them and one with its status and progress, and .../download/ streams a ready one's zip
(those who read the evidence)."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.reverse import reverse

from governance.core.actors import acting_user
from governance.core.api_permissions import ApiPermission
from governance.core.serializers import InputSerializer
from governance.evidence.bundle import bundle_download, bundle_request
from governance.evidence.period import period_from
from governance.evidence.permissions import can_build_bundle, can_read_evidence
from governance.evidence.samples import SEED_MAX
from governance.models import EvidenceBundle, EvidenceScope


class BundleAccess(ApiPermission):
    """Evidence readers follow and download bundles; those who may export the ledger start them."""

    def allows(self, request, view) -> bool:
        if request.method == "POST":
            return can_build_bundle(request.user)
        return can_read_evidence(request.user)


class EvidenceBundleSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    download = serializers.SerializerMethodField(help_text="The zip's address once the bundle is ready, else null.")

    class Meta:
        model = EvidenceBundle
        fields = ["id", "period_start", "period_end", "scope", "seed", "status", "progress", "stage", "requested_by",
                  "requested_at", "finished_at", "size_bytes", "sha256", "ledger_head_seq", "error", "download"]

    def get_download(self, bundle: EvidenceBundle) -> str | None:
        if bundle.status != EvidenceBundle.Status.READY:
            return None
        return reverse("audit-bundle-download", args=[bundle.pk], request=self.context.get("request"))


class EvidenceBundleInputSerializer(InputSerializer):
    start = serializers.CharField(max_length=40, help_text="First day (2026-01-01) or moment of the period.")
    end = serializers.CharField(max_length=40, help_text="Last day (counted whole) or moment; at most 400 days on.")
    scope = serializers.ChoiceField(choices=EvidenceScope.choices, default=EvidenceScope.ALL)
    seed = serializers.IntegerField(min_value=0, max_value=SEED_MAX, help_text="The seed the sample is drawn with; "
                                                                               "record it to draw the same again.")


class EvidenceBundleListView(generics.ListAPIView):
    """GET: the bundles, newest first. POST: start building one; it is queued, and its `progress` and `status` tell
    when it is ready to download."""

    serializer_class = EvidenceBundleSerializer
    permission_classes = [BundleAccess]
    filter_backends: list = []
    queryset = EvidenceBundle.objects.select_related("requested_by").order_by("-requested_at", "-id")

    @extend_schema(request=EvidenceBundleInputSerializer, responses={202: EvidenceBundleSerializer})
    def post(self, request):
        given = EvidenceBundleInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        period = period_from(data["start"], data["end"], data["scope"])
        bundle = bundle_request(actor=acting_user(request.user), period=period, seed=data["seed"])
        return Response(EvidenceBundleSerializer(bundle, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


class EvidenceBundleDetailView(generics.RetrieveAPIView):
    """One bundle: its status, progress and, once ready, its size, SHA-256 and download address."""

    serializer_class = EvidenceBundleSerializer
    permission_classes = [BundleAccess]
    queryset = EvidenceBundle.objects.select_related("requested_by")


class EvidenceBundleDownloadView(generics.GenericAPIView):
    """The ready bundle's zip, streamed from disk; each download is recorded in the ledger as an export."""

    permission_classes = [BundleAccess]
    queryset = EvidenceBundle.objects.all()

    # Bytes as such (a zip, its name in Content-Disposition), the type API clients generated from the schema read
    # as a file.
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                              409: OpenApiResponse(description="The bundle is not ready.")})
    def get(self, request, pk: str):
        bundle = self.get_object()
        file = bundle_download(actor=acting_user(request.user), bundle=bundle)
        return FileResponse(file, as_attachment=True, filename=bundle.file_name,
                            content_type="application/octet-stream")
