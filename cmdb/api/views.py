from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from cmdb import selectors
from cmdb.api.serializers import (
    ConfigurationItemSerializer,
    EnvironmentSerializer,
    ImpactSerializer,
    ImportResultSerializer,
    RelationshipSerializer,
    TeamSerializer,
)
from cmdb.filters import ConfigurationItemFilter, EnvironmentFilter, RelationshipFilter
from cmdb.permissions import (
    can_add_ci,
    can_add_relationship,
    can_change_relationship,
    can_delete_ci,
    can_import,
    can_view_cmdb,
)
from cmdb.services import (
    ImportRecord,
    ci_change_refusal,
    inventory_from_document,
    inventory_import,
    inventory_parse,
)
from governance.core.api_permissions import ApiPermission, model_permission
from governance.core.errors import Forbidden, InvalidInput
from governance.core.parsers import BoundedJSONParser, BoundedMultiPartParser


class CmdbReadOrModelPermission(ApiPermission):
    """Reading needs a CMDB role; writing needs the model permission (admins), checked per object below."""

    def allows(self, request, view) -> bool:
        if not can_view_cmdb(request.user):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return getattr(view, "team_scoped_writes", False) or request.user.has_perm(
            model_permission(request, view.queryset.model))


class TeamViewSet(viewsets.ModelViewSet):
    queryset = selectors.teams()
    serializer_class = TeamSerializer
    permission_classes = [CmdbReadOrModelPermission]
    search_fields = ["name", "slug", "description"]
    ordering_fields = ["name"]


class EnvironmentViewSet(viewsets.ModelViewSet):
    queryset = selectors.environments()
    serializer_class = EnvironmentSerializer
    permission_classes = [CmdbReadOrModelPermission]
    filterset_class = EnvironmentFilter
    search_fields = ["name", "region"]
    ordering_fields = ["position", "name"]


class ConfigurationItemViewSet(viewsets.ModelViewSet):
    """Configuration items. Team maintainers (django-guardian) may write their own team's CIs."""

    queryset = selectors.configuration_items()
    serializer_class = ConfigurationItemSerializer
    permission_classes = [CmdbReadOrModelPermission]
    team_scoped_writes = True
    filterset_class = ConfigurationItemFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "criticality", "ci_type", "updated_at"]

    def perform_create(self, serializer):
        if not can_add_ci(self.request.user, serializer.validated_data["owner_team"]):
            raise Forbidden("You may not add CIs for this team.", field="owner_team")
        serializer.save()

    def perform_update(self, serializer):
        user, new_team = self.request.user, serializer.validated_data.get("owner_team")
        refusal = ci_change_refusal(user, serializer.instance, serializer.validated_data)
        if refusal is not None:
            raise refusal
        if new_team is not None and new_team != serializer.instance.owner_team and not can_add_ci(user, new_team):
            raise Forbidden("You may not move CIs to this team.", field="owner_team")
        serializer.save()

    def perform_destroy(self, instance):
        if not can_delete_ci(self.request.user, instance):
            raise Forbidden("You may not delete this CI.")
        instance.delete()

    @extend_schema(
        responses=ImpactSerializer,
        parameters=[OpenApiParameter("limit", int, description="At most this many CIs in each list.")],
    )
    @action(detail=True, methods=["get"])
    def impact(self, request, pk=None):
        """The blast radius (every CI that transitively depends on this one) and its dependencies."""
        ci = self.get_object()
        try:
            limit = int(request.query_params.get("limit", 1000))
        except ValueError:
            raise InvalidInput("limit must be a whole number.", field="limit") from None
        if limit < 0:
            raise InvalidInput("limit must not be negative.", field="limit")
        impact = selectors.ci_impact(ci, limit=limit)
        data = {
            "ci": ci,
            "dependents_count": len(impact.dependents),
            "dependents": _entries(impact.labelled(impact.dependents)),
            "dependencies": _entries(impact.labelled(impact.dependencies)),
        }
        return Response(ImpactSerializer(data).data)


def _entries(labelled) -> list[dict]:
    return [{"ci": ci, "depth": entry.depth, "path": path} for entry, ci, path in labelled]


class RelationshipViewSet(viewsets.ModelViewSet):
    queryset = selectors.relationships()
    serializer_class = RelationshipSerializer
    permission_classes = [CmdbReadOrModelPermission]
    team_scoped_writes = True
    filterset_class = RelationshipFilter
    ordering_fields = ["created_at"]

    def perform_create(self, serializer):
        if not can_add_relationship(self.request.user, serializer.validated_data["source"]):
            raise Forbidden("You may not add relationships to this CI.", field="source")
        serializer.save()

    def perform_update(self, serializer):
        user, new_source = self.request.user, serializer.validated_data.get("source")
        if not can_change_relationship(user, serializer.instance):
            raise Forbidden("You may not change this relationship.")
        if new_source is not None and new_source != serializer.instance.source and not can_add_relationship(
                user, new_source):
            raise Forbidden("You may not move relationships to this CI.", field="source")
        serializer.save()

    def perform_destroy(self, instance):
        if not can_change_relationship(self.request.user, instance):
            raise Forbidden("You may not delete this relationship.")
        instance.delete()


class InventoryImportView(APIView):
    """Import CIs and relationships: a JSON document, or files (CSV or JSON) sent as multipart `files`."""

    parser_classes = [BoundedJSONParser, BoundedMultiPartParser]

    @extend_schema(request={
        "application/json": inline_serializer("InventoryDocument", {
            "cis": serializers.ListField(child=serializers.DictField(), required=False,
                                         help_text="CIs, each with the fields of a CI (by name: team, environment)."),
            "relationships": serializers.ListField(child=serializers.DictField(), required=False,
                                                   help_text="Relationships: source, target and type."),
        }),
        "multipart/form-data": inline_serializer("InventoryFiles", {
            "files": serializers.ListField(child=serializers.FileField(), help_text="CSV or JSON files."),
        }),
    }, responses={200: ImportResultSerializer})
    def post(self, request):
        if not can_import(request.user):  # before reading the upload: refuse strangers without parsing
            raise Forbidden("Importing into the CMDB needs permission to add and change CIs and relationships.")
        records: list[ImportRecord] = []
        if request.content_type.startswith("multipart/"):
            uploads = request.FILES.getlist("files")
            if not uploads:
                raise InvalidInput("Send one or more files in the `files` field.", field="files")
            for upload in uploads:
                records += inventory_parse(upload.name, upload.read())
        else:
            records = inventory_from_document("request", request.data)
        result = inventory_import(actor=request.user, records=records)
        return Response(ImportResultSerializer(result).data, status=status.HTTP_200_OK)

