"""The calendar API: thin viewsets over the calendar's selectors and services."""

from datetime import datetime

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cmdb.models import ConfigurationItem, Environment
from governance.calendar import selectors, services
from governance.calendar.api.serializers import (
    ActiveAnswerSerializer,
    CalendarFeedInputSerializer,
    CalendarFeedSerializer,
    FreezeWindowSerializer,
    IssuedFeedSerializer,
    LiftInputSerializer,
    LockdownInputSerializer,
    LockdownSerializer,
    MaintenanceWindowSerializer,
)
from governance.calendar.permissions import can_declare_lockdown, can_edit_window, can_read_calendar
from governance.calendar.verdict import freeze_stops
from governance.core.actors import acting_user
from governance.core.api_permissions import MODEL_VERBS, ApiPermission
from governance.core.errors import InvalidInput
from governance.core.inputs import query_moment
from governance.core.serializers import validated
from governance.models.calendar import CalendarFeed, FreezeWindow, Lockdown, MaintenanceWindow
from governance.models.changes import ChangeType

INSTANT = datetime.resolution  # "covers this moment" is "overlaps [at, at + 1 µs)"


class WindowReadOrModelPermission(ApiPermission):
    """Calendar readers read; writing a window needs the model permission (release managers, admins)."""

    def allows(self, request, view) -> bool:
        if not can_read_calendar(request.user):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_edit_window(request.user, view.queryset.model, MODEL_VERBS[request.method])


class LockdownPermission(ApiPermission):
    """Calendar readers read; declaring and lifting need governance.declare_lockdown (the service checks too)."""

    def allows(self, request, view) -> bool:
        if not can_read_calendar(request.user):
            return False
        return request.method in permissions.SAFE_METHODS or can_declare_lockdown(request.user)


class CalendarReader(ApiPermission):
    def allows(self, request, view) -> bool:
        return can_read_calendar(request.user)


class WindowViewSet(viewsets.ModelViewSet):
    """Each save recomputes the window's stored occurrences, in the same transaction."""

    permission_classes = [WindowReadOrModelPermission]
    search_fields = ["name"]
    ordering_fields = ["name", "start_date", "created_at"]

    def get_queryset(self):
        return super().get_queryset().prefetch_related(selectors.upcoming_occurrences(timezone.now()))

    def perform_create(self, serializer):
        self._saved(serializer, self.queryset.model())

    def perform_update(self, serializer):
        self._saved(serializer, serializer.instance)

    def _saved(self, serializer, window) -> None:
        fields = dict(serializer.validated_data)
        environments, cis = fields.pop("environments", None), fields.pop("cis", None)
        window = services.window_save(actor=acting_user(self.request.user), window=window, fields=fields,
                                      environments=environments, cis=cis)
        serializer.instance = self.get_queryset().get(pk=window.pk)  # answered with its new occurrences


class FreezeWindowViewSet(WindowViewSet):
    """Freezes: hard (only emergency changes, by the emergency CAB) or soft (one extra approval)."""

    queryset = FreezeWindow.objects.select_related("extra_approval_role").prefetch_related(
        *selectors.SCOPE_PREFETCH)
    serializer_class = FreezeWindowSerializer
    filterset_fields = ["active", "severity", "recurrence"]
    search_fields = ["name", "reason"]

    @extend_schema(
        responses=ActiveAnswerSerializer,
        parameters=[
            OpenApiParameter("at", datetime, description="ISO 8601; default now; without an offset, UTC."),
            OpenApiParameter("ci", str, description="A CI's name; its own environment unless one is given."),
            OpenApiParameter("environment", str, description="An environment's name."),
        ],
    )
    @action(detail=False, methods=["get"])
    def active(self, request):
        """Which freezes and lockdowns cover this scope at this time. Without a CI or an environment: every
        freeze and lockdown in force; with an environment only: those covering the whole environment."""
        now = timezone.now()
        at = query_moment(request.query_params.get("at"), field="at") or now
        if not now - services.PAST <= at <= now + services.HORIZON:  # occurrences are stored for this span only
            raise InvalidInput(f"at must lie within {services.PAST.days} days back and {services.HORIZON.days} "
                               "days ahead: occurrences are computed for that span.", field="at")
        ci = _named(ConfigurationItem.objects.filter(name__iexact=request.query_params.get("ci")),
                    request.query_params.get("ci"), field="ci")
        environment = _named(Environment.objects.filter(name=request.query_params.get("environment")),
                             request.query_params.get("environment"), field="environment")
        if environment is None and ci is not None and ci.environment_id is not None:
            environment = ci.environment
        cis = [ci] if ci is not None else None
        environment_id = environment.pk if environment else None
        freezes = [selectors.FreezeHit(o.freeze, o.period.lower, o.period.upper) for o in selectors.covering(
            selectors.freeze_occurrences_between(at, at + INSTANT), FreezeWindow, cis, environment_id)]
        lockdowns = list(selectors.lockdowns_with_state(
            selectors.covering(selectors.lockdowns_active(at), Lockdown, cis, environment_id), now))
        # Frozen for a normal change: an emergency one goes through a hard freeze.
        frozen = bool(lockdowns) or any(freeze_stops(hit.freeze.severity, ChangeType.NORMAL) for hit in freezes)
        answer = {"at": at, "ci": ci.name if ci else None, "environment": environment.name if environment else None,
                  "frozen": frozen,
                  "freezes": freezes, "lockdowns": lockdowns}
        return Response(ActiveAnswerSerializer(answer).data)


class MaintenanceWindowViewSet(WindowViewSet):
    """When changes of some types may be implemented in scope; outside them they are flagged or refused."""

    queryset = MaintenanceWindow.objects.prefetch_related(*selectors.SCOPE_PREFETCH)
    serializer_class = MaintenanceWindowSerializer
    filterset_fields = ["active", "enforcement", "recurrence"]


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("active", bool, description="true: only those in force now; false: only those not.")]))
class LockdownViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Stop the line: a lockdown refuses approvals, scheduling and deployments in its scope until lifted."""

    serializer_class = LockdownSerializer
    permission_classes = [LockdownPermission]
    search_fields = ["reason"]
    ordering_fields = ["declared_at"]

    def get_queryset(self):
        lockdowns = selectors.lockdowns_with_state(Lockdown.objects.select_related("declared_by", "lifted_by")
                                                   .prefetch_related(*selectors.SCOPE_PREFETCH), timezone.now())
        wanted = self.request.query_params.get("active") if not getattr(self, "swagger_fake_view", False) else None
        if wanted is not None:
            if wanted not in ("true", "false"):
                raise InvalidInput("active is true or false.", field="active")
            lockdowns = lockdowns.filter(in_force=wanted == "true")
        return lockdowns

    @extend_schema(request=LockdownInputSerializer, responses={201: LockdownSerializer})
    def create(self, request):
        """Declare a lockdown now; changes in flight in its scope go on hold at once."""
        data = validated(LockdownInputSerializer, request.data)
        lockdown = services.lockdown_declare(
            actor=request.user, reason=data.pop("reason"), until=data.pop("until"),
            environments=data.pop("environments", []), cis=data.pop("cis", []), scope=data)
        return Response(self._fresh(lockdown), status=status.HTTP_201_CREATED)

    @extend_schema(request=LiftInputSerializer, responses=LockdownSerializer)
    @action(detail=True, methods=["post"])
    def lift(self, request, pk=None):
        """Lift the lockdown: the changes it held are released."""
        lockdown = self.get_object()
        data = validated(LiftInputSerializer, request.data)
        lockdown = services.lockdown_lift(actor=request.user, lockdown=lockdown, reason=data["reason"])
        return Response(self._fresh(lockdown))

    def _fresh(self, lockdown: Lockdown) -> dict:
        return LockdownSerializer(self.get_queryset().get(pk=lockdown.pk)).data


class CalendarFeedViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your private iCalendar feeds. The URL is shown once, at creation; revoke a feed to stop it."""

    serializer_class = CalendarFeedSerializer
    permission_classes = [CalendarReader]
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CalendarFeed.objects.none()
        return selectors.calendar_feeds_of(self.request.user)

    @extend_schema(request=CalendarFeedInputSerializer, responses={201: IssuedFeedSerializer})
    def create(self, request):
        data = validated(CalendarFeedInputSerializer, request.data)
        issued = services.calendar_feed_create(actor=request.user, name=data["name"], team=data["team"])
        issued.feed.url = request.build_absolute_uri(reverse("calendar_feed", args=[issued.secret]))
        return Response(IssuedFeedSerializer(issued.feed).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=CalendarFeedSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Stop the feed: its URL answers 404 from now on."""
        feed = services.calendar_feed_revoke(actor=request.user, feed=self.get_object())
        return Response(CalendarFeedSerializer(feed).data)


def _named(matches, name: str | None, *, field: str):
    """The one record `matches` finds for a name given in the query string; None when no name is given."""
    if name is None or name == "":
        return None
    found = matches.first()
    if found is None:
        raise InvalidInput(f"No {matches.model._meta.verbose_name} is named {name[:100]!r}.", field=field)
    return found
