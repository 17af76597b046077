"""The incidents API: incidents with their ranked suspects, a release manager's confirmation or dismissal of a suspect,
and the signed webhook the ITSM tools send incidents to. Thin: validate, call one service, read the result back."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.core.actors import acting_user
from governance.core.api_permissions import ApiPermission
from governance.core.api_schema import ErrorSerializer
from governance.core.errors import Forbidden
from governance.core.parsers import BodyTooLarge
from governance.core.serializers import validated
from governance.itsm.api.serializers import (
    DecisionInputSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    IncidentTakenSerializer,
    IncidentWebhookSerializer,
)
from governance.itsm.correlation import suspect_decide
from governance.itsm.incident_permissions import can_decide_suspects, can_read_incidents
from governance.itsm.incidents import incident_detailed, incidents_listed
from governance.itsm.webhook_in import MAX_BODY_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER, incident_webhook_take
from governance.models.itsm import IncidentSuspect, SuspectStatus


class IncidentReader(ApiPermission):
    """Those whose role reads changes read incidents; a decision is a release manager's (the service checks again)."""

    def allows(self, request, view) -> bool:
        return can_read_incidents(request.user)


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Incidents brought in from the ITSM tools, newest first, each with the deployments suspected of causing it."""

    permission_classes = [IncidentReader]
    search_fields = ["number", "title", "external_id"]
    ordering_fields = ["opened_at", "priority"]
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        return incidents_listed() if self.action == "list" else incident_detailed()

    def get_serializer_class(self):
        return IncidentSerializer if self.action == "list" else IncidentDetailSerializer

    def _decide(self, request, pk: str, sid: str, decision: str) -> Response:
        # Checked before the body is read; the service checks it again.
        if not can_decide_suspects(request.user):
            raise Forbidden("Only a release manager confirms or dismisses a suspect.")
        incident = self.get_object()
        suspect = get_object_or_404(IncidentSuspect, pk=sid, incident=incident)
        data = validated(DecisionInputSerializer, request.data)
        suspect_decide(actor=acting_user(request.user), suspect=suspect, status=decision, reason=data["reason"])
        return Response(IncidentDetailSerializer(incident_detailed().get(pk=incident.pk)).data)

    @extend_schema(request=DecisionInputSerializer, responses=IncidentDetailSerializer,
                   parameters=[OpenApiParameter("sid", int, OpenApiParameter.PATH, description="The suspect's id.")])
    @action(detail=True, methods=["post"], url_path=r"suspects/(?P<sid>[^/.]+)/confirm")
    def confirm(self, request, pk=None, sid=None):
        """Confirm the suspect as the incident's cause: its deployment is marked as having caused a failure, which
        the risk of later changes to its service counts."""
        return self._decide(request, pk, sid, SuspectStatus.CONFIRMED)

    @extend_schema(request=DecisionInputSerializer, responses=IncidentDetailSerializer,
                   parameters=[OpenApiParameter("sid", int, OpenApiParameter.PATH, description="The suspect's id.")])
    @action(detail=True, methods=["post"], url_path=r"suspects/(?P<sid>[^/.]+)/dismiss")
    def dismiss(self, request, pk=None, sid=None):
        """Dismiss the suspect: it did not cause the incident."""
        return self._decide(request, pk, sid, SuspectStatus.DISMISSED)


class Anyone(ApiPermission):
    """The webhook's signature is its credential, checked by the service."""

    def allows(self, request, view) -> bool:
        return True


class IncidentWebhookView(APIView):
    """An ITSM tool sends an incident (a ServiceNow incident record, or the same fields by their plain names), signed
    with the source's secret: X-Changeboard-Timestamp (Unix seconds) and X-Changeboard-Signature (hex HMAC-SHA256 of
    "<timestamp>.<body>"). 401 for a wrong signature or a timestamp more than 5 minutes off, 409 for a replay (each
    refusal in the ledger), 400 naming the field of a malformed incident (nothing written)."""

    authentication_classes: list = []
    permission_classes = [Anyone]
    http_method_names = ["post", "options"]

    @extend_schema(
        request=IncidentWebhookSerializer, auth=[],
        parameters=[
            OpenApiParameter("source", str, OpenApiParameter.PATH, pattern=r"^[-a-zA-Z0-9_]+$",
                             description="The connector (or source) name whose secret signs the delivery."),
            OpenApiParameter(TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True,
                             description="Unix seconds when it was signed; more than 5 minutes off is refused."),
            OpenApiParameter(SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True,
                             description='Hex HMAC-SHA256 of "<timestamp>.<body>" with the source\'s secret.'),
        ],
        responses={202: IncidentTakenSerializer,
                   401: OpenApiResponse(ErrorSerializer, description="A wrong signature, or a timestamp more than "
                                                                     "5 minutes off."),
                   409: OpenApiResponse(ErrorSerializer, description="A replay: this delivery was taken already."),
                   413: OpenApiResponse(ErrorSerializer, description=f"A body over {MAX_BODY_BYTES} bytes.")})
    def post(self, request, source: str):
        declared = request.META.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        incident = incident_webhook_take(source=source, timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                                         signed=request.headers.get(SIGNATURE_HEADER, ""), body=body)
        return Response({"id": incident.pk, "source": incident.source, "external_id": incident.external_id,
                         "number": incident.number}, status=status.HTTP_202_ACCEPTED)
