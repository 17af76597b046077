"""Filters shared by the change list page and the changes API."""

import django_filters
from django.db.models import Exists, OuterRef

from cmdb.models import Environment, Team
from governance.changes.selectors import awaiting_approval_by
from governance.core.inputs import MomentFilter
from governance.models.changes import ChangeRequest, ChangeStatus, ChangeType, RiskLevel

# Filtering on affected CIs through Exists keeps one row per change: no join, no DISTINCT, honest counts.
_AFFECTED = ChangeRequest.affected_cis.through.objects


class ChangeRequestFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ChangeStatus.choices)
    change_type = django_filters.MultipleChoiceFilter(choices=ChangeType.choices, label="Type")
    risk_level = django_filters.MultipleChoiceFilter(choices=RiskLevel.choices, label="Risk")
    environment = django_filters.ModelChoiceFilter(queryset=Environment.objects.all(), to_field_name="name")
    team = django_filters.ModelChoiceFilter(queryset=Team.objects.all(), to_field_name="slug",
                                            field_name="affected_cis__owner_team", method="touches_team",
                                            label="Team owning an affected CI")
    ci = django_filters.CharFilter(field_name="affected_cis__name", method="touches_ci", label="Affected CI (name)")
    window_from = MomentFilter(field_name="planned_end", lookup_expr="gt", label="Window ends after")
    window_to = MomentFilter(field_name="planned_start", lookup_expr="lt", label="Window starts before")
    awaiting_me = django_filters.BooleanFilter(method="awaiting", label="Awaiting my approval")

    class Meta:
        model = ChangeRequest
        fields: list[str] = []

    def touches_team(self, queryset, name, value):
        return queryset.filter(Exists(_AFFECTED.filter(changerequest_id=OuterRef("pk"),
                                                       configurationitem__owner_team=value)))

    def touches_ci(self, queryset, name, value):
        return queryset.filter(Exists(_AFFECTED.filter(changerequest_id=OuterRef("pk"),
                                                       configurationitem__name__iexact=value)))

    def awaiting(self, queryset, name, value):
        mine = awaiting_approval_by(self.request.user)
        return queryset.filter(mine) if value else queryset.exclude(mine)
