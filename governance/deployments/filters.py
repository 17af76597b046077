"""Filters shared by the deployments page and the deployments API, and the plan list's."""

import django_filters

from cmdb.models import Environment
from releases.models import Deployment, DeploymentKind, DeploymentPlan, DeploymentStatus


class DeploymentFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__name", label="Service (name)", max_length=200)
    environment = django_filters.ModelChoiceFilter(queryset=Environment.objects.all(), to_field_name="name",
                                                   empty_label="Any")
    status = django_filters.MultipleChoiceFilter(choices=DeploymentStatus.choices)
    kind = django_filters.ChoiceFilter(choices=DeploymentKind.choices, empty_label="Any")

    class Meta:
        model = Deployment
        fields: list[str] = []


class DeploymentPlanFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__name", lookup_expr="icontains", label="Service (name)",
                                        max_length=200)
    environment = django_filters.ModelChoiceFilter(queryset=Environment.objects.all(), to_field_name="name",
                                                   empty_label="Any")

    class Meta:
        model = DeploymentPlan
        fields: list[str] = []
