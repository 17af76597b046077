"""The changes API: thin viewsets that validate input, call a change service and shape its result."""

from django.db.models import BooleanField, Case, Prefetch, Value, When
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.changes import selectors, services
from governance.changes.api.serializers import (
    ApprovalInputSerializer,
    ApprovalPolicySerializer,
    ApprovalResultSerializer,
    ApprovalSerializer,
    ChangeRequestDetailSerializer,
    ChangeRequestInputSerializer,
    ChangeRequestSerializer,
    RetrospectiveInputSerializer,
    SlotsSerializer,
    StandardChangeTemplateSerializer,
    TransitionInputSerializer,
)
from governance.changes.filters import ChangeRequestFilter
from governance.changes.permissions import can_raise_change, can_read_change_calendar, can_view_changes, edit_refusal
from governance.changes.scheduling import schedule_suggestions
from governance.changes.selectors import change_requests_visible_to
from governance.changes.standard import standard_template_approve
from governance.core.api_permissions import ApiPermission, model_permission
from governance.core.errors import Forbidden, InvalidInput
from governance.core.serializers import validated
from governance.models.changes import ApprovalPolicy, ChangeRequest, ChangeStatusChange, StandardChangeTemplate


class ChangeReader(ApiPermission):
    """Every endpoint here needs the right to view changes; what a write needs besides, the service decides."""

    def allows(self, request, view) -> bool:
        return can_view_changes(request.user)


class PolicyReadOrModelPermission(ApiPermission):
    """Whoever may view changes reads the policies; writing them needs the model permission (admins)."""

    def allows(self, request, view) -> bool:
        if not can_view_changes(request.user):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return request.user.has_perm(model_permission(request, ApprovalPolicy))


class ChangeRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Change requests by number (CHG0000123): raise, edit, move through the lifecycle, approve."""

    permission_classes = [ChangeReader]
    lookup_field = "number"
    filterset_class = ChangeRequestFilter
    search_fields = ["number", "title"]
    ordering_fields = ["created_at", "planned_start", "risk_score", "number", "awaiting_me"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or not self.request.user.is_authenticated:
            return ChangeRequest.objects.none()
        user = self.request.user
        queryset = (selectors.change_requests_visible_to(user).prefetch_related("affected_cis")
                    .annotate(awaiting_me=Case(When(selectors.awaiting_approval_by(user), then=Value(True)),
                                               default=Value(False), output_field=BooleanField())))
        if self.action != "list":
            queryset = queryset.prefetch_related(
                Prefetch("status_changes", queryset=ChangeStatusChange.objects.select_related("actor")))
        return queryset

    def get_serializer_class(self):
        return ChangeRequestSerializer if self.action == "list" else ChangeRequestDetailSerializer

    def _detail(self, change: ChangeRequest, status_code: int = status.HTTP_200_OK) -> Response:
        """The change as it is now, read again so the answer shows what the service wrote."""
        fresh = self.get_queryset().get(pk=change.pk)
        return Response(ChangeRequestDetailSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status_code)

    @extend_schema(request=ChangeRequestInputSerializer, responses={201: ChangeRequestDetailSerializer})
    def create(self, request):
        """Raise a change as a draft; the caller is its requester."""
        # Checked before the body is read, as the service checks it again: its CI names are the costly part.
        if not can_raise_change(request.user):
            raise Forbidden("Raising a change needs the requester role.")
        data = validated(ChangeRequestInputSerializer, request.data)
        change = services.change_request_create(actor=request.user, cis=data.pop("affected_cis", []), **data)
        return self._detail(change, status.HTTP_201_CREATED)

    @extend_schema(request=ChangeRequestInputSerializer, responses=ChangeRequestDetailSerializer)
    def partial_update(self, request, number=None):
        """Edit a change: anything while it is a draft; afterwards its window, environment, CIs and wording."""
        change = self.get_object()
        refusal = edit_refusal(request.user, change)  # before the body is read; the service checks it again
        if refusal is not None:
            raise refusal
        data = validated(ChangeRequestInputSerializer, request.data, partial=True)
        change = services.change_request_update(actor=request.user, change=change,
                                                cis=data.pop("affected_cis", None), **data)
        return self._detail(change)

    @extend_schema(request=TransitionInputSerializer, responses=ChangeRequestDetailSerializer)
    @action(detail=True, methods=["post"])
    def transitions(self, request, number=None):
        """Move the change (submit, schedule, implement, complete, close, cancel...); 409 says why not."""
        change = self.get_object()
        data = validated(TransitionInputSerializer, request.data)
        change = services.change_request_transition(actor=request.user, change=change, target=data["target"],
                                                    reason=data["reason"])
        return self._detail(change)

    @extend_schema(methods=["GET"], request=None, responses=ApprovalSerializer(many=True))
    @extend_schema(methods=["POST"], request=ApprovalInputSerializer, responses={201: ApprovalResultSerializer})
    # The whole list, all revisions, in one array: neither paged nor filtered like the list of changes.
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def approvals(self, request, number=None):
        """Every decision on the change, all revisions; POST records yours."""
        change = self.get_object()
        if request.method == "GET":
            approvals = change.approvals.select_related("approver", "role")
            return Response(ApprovalSerializer(approvals, many=True, context={"change": change}).data)
        data = validated(ApprovalInputSerializer, request.data)
        approval = services.approval_record(actor=request.user, change=change, decision=data["decision"],
                                            comment=data["comment"])
        return Response(ApprovalResultSerializer(approval).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RetrospectiveInputSerializer, responses=ChangeRequestDetailSerializer)
    @action(detail=True, methods=["post"])
    def retrospective(self, request, number=None):
        """Record the retrospective review an approved emergency change owes."""
        change = self.get_object()
        data = validated(RetrospectiveInputSerializer, request.data)
        change = services.change_retrospective_record(actor=request.user, change=change, notes=data["notes"])
        return self._detail(change)


class ApprovalPolicyViewSet(viewsets.ModelViewSet):
    """Which changes need whose approval. Changes assessed later follow the policies as they are then."""

    queryset = ApprovalPolicy.objects.prefetch_related("environments", "requirements__role")
    serializer_class = ApprovalPolicySerializer
    permission_classes = [PolicyReadOrModelPermission]
    filterset_fields = ["active"]
    search_fields = ["name", "description"]
    ordering_fields = ["name"]


class StandardChangeTemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Standard change models: what each covers and which version is approved. They are written in the admin;
    a CAB member or release manager who did not write a version approves it here or there."""

    queryset = (StandardChangeTemplate.objects.select_related("edited_by", "approved_by")
                .prefetch_related("cis", "environments"))
    serializer_class = StandardChangeTemplateSerializer
    permission_classes = [ChangeReader]
    filterset_fields = ["active"]
    search_fields = ["name", "description"]
    ordering_fields = ["name"]

    @extend_schema(request=None, responses=StandardChangeTemplateSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve the template's current version: 403 to whoever wrote it, 409 when it is already approved."""
        template = standard_template_approve(actor=request.user, template=self.get_object())
        return Response(self.get_serializer(self.get_queryset().get(pk=template.pk)).data)


# The change's slots on the release calendar.

MAX_SLOTS = 50


class ChangeCalendarReader(ApiPermission):
    def allows(self, request, view) -> bool:
        return can_read_change_calendar(request.user)


class ChangeSlotsView(APIView):
    """GET /changes/{number}/slots/: the next free slots for a change, clear of freezes, lockdowns and
    conflicting changes, inside a maintenance window that governs it."""

    permission_classes = [ChangeCalendarReader]

    @extend_schema(responses=SlotsSerializer, parameters=[
        OpenApiParameter("count", int, description=f"How many slots, 1 to {MAX_SLOTS}; default 5.")])
    def get(self, request, number: str):
        change = get_object_or_404(change_requests_visible_to(request.user).prefetch_related("affected_cis"),
                                   number=number)
        count = _whole(request.query_params.get("count"), field="count", default=5, low=1, high=MAX_SLOTS)
        slots = schedule_suggestions(change, count=count)
        return Response(SlotsSerializer({"change": change.number,
                                         "slots": [{"start": s, "end": e} for s, e in slots]}).data)


def _whole(value: str | None, *, field: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{field} must be a whole number.", field=field) from None
    if not low <= number <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}.", field=field)
    return number
