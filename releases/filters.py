"""Filters of artifacts, shared by the artifact list page and the API."""

import django_filters
from django.db.models import Q

from releases.models import Artifact, SignatureStatus


class ArtifactFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    signature_status = django_filters.ChoiceFilter(choices=SignatureStatus.choices, label="Signature",
                                                   empty_label="any")

    class Meta:
        model = Artifact
        fields = ["version"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(service__name__icontains=value) | Q(version__icontains=value)
                               | Q(digest__startswith=value))
