"""Forms of the change pages: they parse what the browser sends; the services decide what is allowed."""

from datetime import date, datetime, time, timedelta

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.changes.filters import ChangeRequestFilter
from governance.core.inputs import WordListField
from governance.models.changes import (
    ACTIVE_STATES,
    CabAgendaItem,
    CabMeeting,
    ChangeRequest,
    ChangeStatus,
    ChangeType,
    Decision,
    ReleaseStrategy,
    RiskLevel,
    StandardChangeTemplate,
)
from governance.roles import APPROVER_ROLES, Role, implementers

WINDOW_FORMAT = "%Y-%m-%dT%H:%M"


class UtcDateTimeField(forms.DateTimeField):
    """A `datetime-local` input read as UTC (the site's time zone). It shows minutes, so a value that
    differs from the stored one only below the minute has not changed."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=WINDOW_FORMAT)

    def __init__(self, **kwargs):
        kwargs.setdefault("input_formats", [WINDOW_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])
        kwargs.setdefault("help_text", "UTC")
        super().__init__(**kwargs)

    def has_changed(self, initial, data) -> bool:
        if isinstance(initial, datetime):
            initial = initial.replace(second=0, microsecond=0)
        return super().has_changed(initial, data)


class PlainTextField(forms.CharField):
    """A textarea whose line endings are kept as \\n: browsers send \\r\\n, and an unedited plan must compare
    equal to the stored one (after submission a plan is fixed, and sending it again would be refused)."""

    widget = forms.Textarea(attrs={"rows": 4})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n")


def _person_label(user) -> str:
    name = user.get_full_name()
    return f"{name} ({user.get_username()})" if name else user.get_username()


class PersonField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return _person_label(obj)


class PersonChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return _person_label(obj)


def _people() -> QuerySet:
    return get_user_model().objects.filter(is_active=True).order_by("username")


class ChangeRequestForm(forms.Form):
    """Every field a requester fills in; names match the service's keyword arguments."""

    title = forms.CharField(max_length=200)
    description = PlainTextField()
    change_type = forms.ChoiceField(choices=ChangeType.choices, initial=ChangeType.NORMAL, label="Type")
    template = forms.ModelChoiceField(
        queryset=StandardChangeTemplate.objects.filter(active=True), required=False,
        label="Standard change template", help_text="Standard changes only.")
    # Only people who may carry a change out: no auditor, no service account (governance.roles).
    implementer = PersonField(queryset=implementers(), required=False,
                              help_text="Who carries it out; they cannot approve it.")
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("position"), required=False,
                                         to_field_name="name")
    cis = forms.ModelMultipleChoiceField(queryset=ConfigurationItem.objects.all(), required=False,
                                         label="Affected CIs")
    planned_start = UtcDateTimeField(required=False, label="Window opens")
    planned_end = UtcDateTimeField(required=False, label="Window closes")
    implementation_plan = PlainTextField()
    test_evidence = PlainTextField(help_text="Links, results or notes showing the change was tested.")
    backout_plan = PlainTextField()
    rollback_error_rate_pct = forms.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100,
                                                 required=False, label="Roll back above error rate (%)")
    rollback_latency_p99_ms = forms.IntegerField(min_value=0, required=False, label="Roll back above p99 latency (ms)")
    rollback_failed_health_checks = forms.IntegerField(min_value=0, max_value=32767, required=False,
                                                       label="Roll back after failed health checks")
    release_strategy = forms.ChoiceField(choices=[("", "—"), *ReleaseStrategy.choices], required=False,
                                         label="Strategy")
    strategy_reason = PlainTextField(label="Why this strategy")
    feature_flags = WordListField(required=False, help_text="One per line or separated by commas.")
    pinned_digests = WordListField(required=False, label="Approved builds",
                                   help_text="Artifact digests (sha256:…) the gate lets through under this change; "
                                             "empty means any promoted build.")
    rolls_back = forms.BooleanField(required=False, label="Rollback to an earlier build")

    @classmethod
    def initial_for(cls, change: ChangeRequest) -> dict:
        initial = {name: getattr(change, name) for name in cls.base_fields if name != "cis"}
        initial["cis"] = [ci.pk for ci in change.affected_cis.all()]
        return initial

    def service_fields(self) -> dict:
        """The cleaned fields for the service, without the CIs (passed on their own)."""
        return {name: value for name, value in self.cleaned_data.items() if name != "cis"}

    def changed_service_fields(self) -> dict:
        """Only what the person changed: after submission most fields are fixed, and sending an unchanged
        one again would be refused."""
        return {name: self.cleaned_data[name] for name in self.changed_data if name != "cis"}


class ChangeDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ChangeTransitionForm(forms.Form):
    target = forms.CharField()
    reason = forms.CharField(required=False, max_length=2000)


class RetrospectiveForm(forms.Form):
    notes = PlainTextField(required=True, label="What the review found")


class AnyOfField(django_filters.fields.MultipleChoiceField):
    """Choices of which any matches. A page's select sends its "any" option as an empty value, which means no
    filter rather than a choice that does not exist."""

    def clean(self, value):
        if isinstance(value, list | tuple):
            value = [item for item in value if item not in ("", None)]
        return super().clean(value)


class AnyOfFilter(django_filters.MultipleChoiceFilter):
    field_class = AnyOfField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("distinct", False)  # a column of the change itself: no join to repeat rows
        super().__init__(*args, **kwargs)


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _after(day: date) -> datetime | None:
    """The first moment after `day` (UTC), or None for the last day there is."""
    return None if day >= date.max else _midnight(day + timedelta(days=1))


class ChangePageFilter(ChangeRequestFilter):
    """The changes API's filters on a page, where an empty team or environment reads "any"."""

    @property
    def form(self):
        form = super().form
        for name in ("team", "environment"):
            form.fields[name].empty_label = "any"
        return form


class CabQueueFilter(ChangePageFilter):
    """The changes API's filters, shaped for the queue page: only the states the queue holds, days for the
    window (a change shows if its window meets them), and one tick box for "awaiting my approval" that,
    left unticked, leaves the queue whole. An empty choice means any."""

    status = AnyOfFilter(choices=[(state.value, state.label) for state in ACTIVE_STATES], label="Status")
    change_type = AnyOfFilter(choices=ChangeType.choices, label="Type")
    risk_level = AnyOfFilter(choices=RiskLevel.choices, label="Risk")
    window_from = django_filters.DateFilter(method="window_ends_after", label="Window from",
                                            widget=forms.DateInput(attrs={"type": "date"}))
    window_to = django_filters.DateFilter(method="window_starts_before", label="Window to",
                                          widget=forms.DateInput(attrs={"type": "date"}))
    awaiting_me = django_filters.BooleanFilter(method="only_mine", label="Awaiting my approval",
                                               widget=forms.CheckboxInput)

    def window_ends_after(self, queryset, name, day):
        return queryset.filter(planned_end__gt=_midnight(day))

    def window_starts_before(self, queryset, name, day):
        after = _after(day)  # nothing starts after the last day there is
        return queryset if after is None else queryset.filter(planned_start__lt=after)

    def only_mine(self, queryset, name, value):
        return queryset.filter(awaits_me=1) if value else queryset


class Mine(models.TextChoices):
    REQUESTED = "requested", "Requested by me"
    IMPLEMENTING = "implementing", "Carried out by me"
    EITHER = "either", "Requested or carried out by me"


class DatesOf(models.TextChoices):
    WINDOW = "window", "Window"
    UPDATED = "updated", "Last updated"
    RAISED = "raised", "Raised"


class ChangeListFilter(ChangePageFilter):
    """Every change in any state, for finding one again: a draft of mine, what closed last month. `mine` puts
    my drafts first. The days `since` and `until` (UTC) apply to the window (it meets them), the last update
    or the day the change was raised, as `dates` says."""

    q = django_filters.CharFilter(method="number_or_title", label="Number or title")
    status = AnyOfFilter(choices=ChangeStatus.choices, label="Status")
    change_type = AnyOfFilter(choices=ChangeType.choices, label="Type")
    risk_level = AnyOfFilter(choices=RiskLevel.choices, label="Risk")
    mine = django_filters.ChoiceFilter(choices=Mine.choices, method="involving_me", label="Whose",
                                       empty_label="anyone's")
    dates = django_filters.ChoiceFilter(choices=DatesOf.choices, method="dates_apply", label="Dates of",
                                        empty_label=None)
    since = django_filters.DateFilter(method="dates_from", label="From",
                                      widget=forms.DateInput(attrs={"type": "date"}))
    until = django_filters.DateFilter(method="dates_to", label="To", widget=forms.DateInput(attrs={"type": "date"}))
    # None takes an inherited filter away (django-filter's way); the stubs see a field of another type.
    window_from = None  # type: ignore[assignment]  # `dates`, `since` and `until` instead
    window_to = None  # type: ignore[assignment]
    awaiting_me = None  # the queue's

    def number_or_title(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(number__iexact=value) | Q(title__icontains=value)) if value else queryset

    def involving_me(self, queryset, name, value):
        user = self.request.user
        who = {Mine.REQUESTED: Q(requester=user), Mine.IMPLEMENTING: Q(implementer=user)}.get(
            value, Q(requester=user) | Q(implementer=user))
        return queryset.filter(who)

    def dates_apply(self, queryset, name, value):
        return queryset  # read by `since` and `until`

    def _dated(self) -> str:
        return self.form.cleaned_data.get("dates") or DatesOf.WINDOW

    def dates_from(self, queryset, name, day):
        start = _midnight(day)
        field = {DatesOf.WINDOW: "planned_end__gt", DatesOf.UPDATED: "updated_at__gte",
                 DatesOf.RAISED: "created_at__gte"}[DatesOf(self._dated())]
        return queryset.filter(**{field: start})

    def dates_to(self, queryset, name, day):
        after = _after(day)
        if after is None:
            return queryset.exclude(planned_start=None) if self._dated() == DatesOf.WINDOW else queryset
        field = {DatesOf.WINDOW: "planned_start__lt", DatesOf.UPDATED: "updated_at__lt",
                 DatesOf.RAISED: "created_at__lt"}[DatesOf(self._dated())]
        return queryset.filter(**{field: after})

    def filter_queryset(self, queryset):
        """Filtered as asked (filters with errors left out); with `mine`, drafts first. The order otherwise is
        the one given (the page's: most recently updated first)."""
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("mine"):
            drafts_first = Case(When(status=ChangeStatus.DRAFT, then=Value(0)), default=Value(1),
                                output_field=IntegerField())
            return queryset.order_by(drafts_first, "-updated_at", "-pk")
        return queryset


def cab_people() -> QuerySet:
    """Who may sit on a CAB: approvers and release managers."""
    return _people().filter(groups__name__in=[*APPROVER_ROLES, Role.RELEASE_MANAGER]).distinct()


class CabMeetingForm(forms.Form):
    title = forms.CharField(max_length=200)
    starts_at = UtcDateTimeField(label="Starts")
    attendees = PersonChoiceField(queryset=cab_people(), required=False, widget=forms.CheckboxSelectMultiple)


OUTCOMES = [("", "—"), ("approved", "Approved"), ("rejected", "Rejected"), ("deferred", "Deferred"),
            ("more info needed", "More information needed")]


class CabMeetingRecordForm(forms.Form):
    """Minutes, attendees and, for each agenda item, `outcome_<id>` and `notes_<id>`."""

    minutes = PlainTextField(widget=forms.Textarea(attrs={"rows": 6}))
    attendees = PersonChoiceField(queryset=cab_people(), required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, meeting: CabMeeting, agenda: list[CabAgendaItem], **kwargs):
        kwargs.setdefault("initial", {"minutes": meeting.minutes,
                                      "attendees": [user.pk for user in meeting.attendees.all()]})
        super().__init__(*args, **kwargs)
        self.agenda = agenda
        for item in agenda:
            self.fields[f"outcome_{item.pk}"] = forms.ChoiceField(choices=OUTCOMES, required=False,
                                                                  initial=item.outcome, label="Outcome")
            self.fields[f"notes_{item.pk}"] = forms.CharField(required=False, initial=item.notes, label="Notes",
                                                              widget=forms.TextInput(attrs={"size": 40}))

    def items(self) -> list[tuple[CabAgendaItem, forms.BoundField, forms.BoundField]]:
        return [(item, self[f"outcome_{item.pk}"], self[f"notes_{item.pk}"]) for item in self.agenda]

    def outcomes(self) -> dict[int, tuple[str, str]]:
        return {item.pk: (self.cleaned_data[f"outcome_{item.pk}"], self.cleaned_data[f"notes_{item.pk}"])
                for item in self.agenda}

