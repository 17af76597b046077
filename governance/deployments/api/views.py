"""The deployments API: read deployments, their steps, checks and log; start, pause, resume, abort and approve the
next wave of the ones Changeboard runs; read, make and replace deployment plans. Thin: validate, call one service, read
the result back."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance.core.actors import acting_user
from governance.core.api_permissions import ApiPermission
from governance.core.credentials import request_scope, require_scope
from governance.core.errors import Forbidden, InvalidInput
from governance.core.serializers import validated
from governance.deployments import plans, selectors, services
from governance.deployments.api.serializers import (
    AbortInputSerializer,
    DeploymentDetailSerializer,
    DeploymentPlanDetailSerializer,
    DeploymentPlanSerializer,
    DeploymentSummarySerializer,
    PauseInputSerializer,
    PlanCreateInputSerializer,
    PlanInputSerializer,
    StartInputSerializer,
    plan_input,
)
from governance.deployments.filters import DeploymentFilter
from governance.deployments.permissions import can_edit_plans, can_read_deployments, can_run_deployments
from releases.models import Deployment, DeploymentPlan


class DeploymentReader(ApiPermission):
    """Reading needs a Changeboard role that reads releases or changes; what a write needs, the service decides."""

    def allows(self, request, view) -> bool:
        return can_read_deployments(request.user)


def _release_manager_only(request) -> None:
    # Checked before the body is read; the service checks it again.
    if not can_run_deployments(request.user):
        raise Forbidden("Only a release manager starts, pauses, resumes, aborts or approves a deployment's wave.")


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deployments by number (DEP0000045): those pipelines report and those Changeboard runs by a plan."""

    permission_classes = [DeploymentReader]
    lookup_field = "number"
    filterset_class = DeploymentFilter
    ordering_fields = ["started_at", "number"]
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        if self.action == "list":
            return selectors.deployments_listed().order_by("-started_at", "-pk")
        return selectors.deployment_detailed()

    def get_serializer_class(self):
        return DeploymentSummarySerializer if self.action == "list" else DeploymentDetailSerializer

    def _detail(self, deployment: Deployment, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.deployment_detailed().get(pk=deployment.pk)
        return Response(DeploymentDetailSerializer(fresh).data, status=status_code)

    @extend_schema(request=StartInputSerializer, responses={201: DeploymentDetailSerializer})
    def create(self, request):
        """Start deploying a build by a plan under an approved change: queued while another deployment holds the
        service in the environment. 409 gives every reason the gate or the plan refuses it."""
        _release_manager_only(request)
        data = validated(StartInputSerializer, request.data)
        plan = DeploymentPlan.objects.select_related("service", "environment").filter(pk=data["plan"]).first()
        if plan is None:
            raise InvalidInput(f"No deployment plan has the id {data['plan']}.", field="plan", code="does_not_exist")
        deployment = services.rollout_start(actor=request.user, change=data["change"], plan=plan,
                                            artifact=data["artifact"])
        return self._detail(deployment, status.HTTP_201_CREATED)

    @extend_schema(request=PauseInputSerializer, responses=DeploymentDetailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, number=None):
        """Stop before the next step; the step running now ends first."""
        _release_manager_only(request)
        deployment = self.get_object()
        data = validated(PauseInputSerializer, request.data)
        return self._detail(services.deployment_pause(actor=request.user, deployment=deployment,
                                                      reason=data["reason"]))

    @extend_schema(request=None, responses=DeploymentDetailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, number=None):
        """Go on where it paused; the gate is asked again before the next wave."""
        _release_manager_only(request)
        return self._detail(services.deployment_resume(actor=request.user, deployment=self.get_object()))

    @extend_schema(request=AbortInputSerializer, responses=DeploymentDetailSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request, number=None):
        """Stop for good: the waves done are rolled back in reverse order and it ends aborted."""
        _release_manager_only(request)
        deployment = self.get_object()
        data = validated(AbortInputSerializer, request.data)
        return self._detail(services.deployment_abort(actor=request.user, deployment=deployment,
                                                      reason=data["reason"]))

    @extend_schema(request=None, responses=DeploymentDetailSerializer)
    @action(detail=True, methods=["post"], url_path="approve-next-wave")
    def approve_next_wave(self, request, number=None):
        """Let the wave waiting at its manual gate run; 400 when none waits."""
        _release_manager_only(request)
        deployment = self.get_object()
        services.deployment_wave_approve(actor=request.user, deployment=deployment)
        return self._detail(deployment)


def _plan_editor_only(request) -> None:
    # Checked before the body is read; the plan service checks it again.
    if not can_edit_plans(request.user):
        raise Forbidden("Only release managers and administrators make and edit deployment plans.")


class DeploymentPlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The plans deployments run by, one per service and environment: read by those who read deployments, made
    (POST) and replaced whole (PUT) by release managers and administrators, through the plan editor's service."""

    permission_classes = [DeploymentReader]
    http_method_names = ["get", "post", "put", "head", "options"]

    def get_queryset(self):
        return selectors.plans_for() if self.action == "list" else selectors.plans_listed()

    def get_serializer_class(self):
        return DeploymentPlanSerializer if self.action == "list" else DeploymentPlanDetailSerializer

    def _detail(self, plan: DeploymentPlan, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.plans_listed().get(pk=plan.pk)
        return Response(DeploymentPlanDetailSerializer(fresh).data, status=status_code)

    @extend_schema(request=PlanCreateInputSerializer, responses={201: DeploymentPlanDetailSerializer})
    def create(self, request):
        """Make the plan for a service and environment (one each): 400 names every field at fault."""
        _plan_editor_only(request)
        data = validated(PlanCreateInputSerializer, request.data)
        require_scope(request_scope(request), service=data["service"], environment=data["environment"])
        plan = plans.deployment_plan_create(actor=acting_user(request.user), service=data["service"],
                                            environment=data["environment"], plan=plan_input(data))
        return self._detail(plan, status.HTTP_201_CREATED)

    @extend_schema(request=PlanInputSerializer, responses=DeploymentPlanDetailSerializer)
    def update(self, request, pk=None):
        """Replace the plan's executor, waves, checks and migration with the body's; 409 while a deployment runs by
        it and the body changes what its steps were laid out from."""
        _plan_editor_only(request)
        plan = self.get_object()
        data = validated(PlanInputSerializer, request.data)
        require_scope(request_scope(request), service=plan.service, environment=plan.environment)
        return self._detail(plans.deployment_plan_update(actor=acting_user(request.user), plan=plan,
                                                         given=plan_input(data)))
