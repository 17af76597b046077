"""Filters shared by the CMDB list page and the API."""

import django_filters
from django.db.models import Q

from cmdb.choices import CIType, Criticality, LifecycleStatus, RelationshipType
from cmdb.models import ConfigurationItem, Environment, Relationship, Team


class ConfigurationItemFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    ci_type = django_filters.MultipleChoiceFilter(choices=CIType.choices, label="Type")
    criticality = django_filters.MultipleChoiceFilter(choices=Criticality.choices)
    lifecycle_status = django_filters.MultipleChoiceFilter(choices=LifecycleStatus.choices, label="Status")
    owner_team = django_filters.ModelChoiceFilter(
        queryset=Team.objects.all(), to_field_name="slug", label="Team"
    )
    environment = django_filters.ModelChoiceFilter(queryset=Environment.objects.all(), to_field_name="name")
    region = django_filters.CharFilter()
    tag = django_filters.CharFilter(field_name="tags", lookup_expr="contains", method="has_tag")
    sox_scoped = django_filters.BooleanFilter()
    phi = django_filters.BooleanFilter()
    pci = django_filters.BooleanFilter()

    class Meta:
        model = ConfigurationItem
        fields: list[str] = []

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value) | Q(tags__contains=[value]))

    def has_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])


class RelationshipFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name", lookup_expr="iexact")
    target = django_filters.CharFilter(field_name="target__name", lookup_expr="iexact")
    ci = django_filters.CharFilter(method="touches", label="Either end")
    rel_type = django_filters.MultipleChoiceFilter(choices=RelationshipType.choices, label="Type")

    class Meta:
        model = Relationship
        fields: list[str] = []

    def touches(self, queryset, name, value):
        return queryset.filter(Q(source__name__iexact=value) | Q(target__name__iexact=value))


class EnvironmentFilter(django_filters.FilterSet):
    is_production = django_filters.BooleanFilter()
    region = django_filters.CharFilter()

    class Meta:
        model = Environment
        fields: list[str] = []
