"""Filters of the gate log page."""

import django_filters

from cmdb.models import Environment
from governance.models.gate import DeploymentCheck, GateDecision


class DeploymentCheckFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="service__name", lookup_expr="icontains", label="Service")
    decision = django_filters.ChoiceFilter(choices=GateDecision.choices, empty_label="any")
    environment = django_filters.ModelChoiceFilter(queryset=Environment.objects.all(), to_field_name="name",
                                                   empty_label="any")

    class Meta:
        model = DeploymentCheck
        fields: list[str] = []
