"""Filters shared by the audit search page, its export and the ledger API."""

import django_filters

from governance.core.inputs import MomentFilter, MomentInput
from governance.models import AuditEvent
from governance.models.audit import ActorKind

MOMENT_HINT = "YYYY-MM-DD HH:MM:SS in UTC, or with an offset (+02:00)"


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Actor")
    actor_kind = django_filters.ChoiceFilter(choices=ActorKind.choices, label="Actor kind", empty_label="any")
    action = django_filters.CharFilter(label="Action")
    object_type = django_filters.CharFilter(label="Object type", help_text="e.g. cmdb.configurationitem")
    object_id = django_filters.CharFilter(label="Object id")
    object = django_filters.CharFilter(field_name="object_label", lookup_expr="icontains", label="Object name")
    # A picker on the page; the same ISO 8601 moments as the API in a query string (an offset, or UTC without).
    since = MomentFilter(
        field_name="occurred_at", lookup_expr="gte", label="From (UTC)", widget=MomentInput(), help_text=MOMENT_HINT
    )
    until = MomentFilter(
        field_name="occurred_at", lookup_expr="lt", label="Until (UTC)", widget=MomentInput(), help_text=MOMENT_HINT
    )
    request_id = django_filters.CharFilter(label="Request id")

    class Meta:
        model = AuditEvent
        fields: list[str] = []
