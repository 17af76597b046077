"""The admin's view of the release calendar: freeze and maintenance windows, lockdowns, occurrences."""

from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin
from django.db.models import Min, Q, prefetch_related_objects
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from governance.calendar.permissions import can_declare_lockdown
from governance.calendar.selectors import upcoming_occurrences
from governance.calendar.services import (
    lockdown_declare,
    lockdown_declare_refusal,
    lockdown_lift,
    window_save,
    window_save_refusal,
)
from governance.core.admin import RecordAdmin, each_selected, show_refusal
from governance.models import (
    FreezeWindow,
    Lockdown,
    MaintenanceWindow,
    Occurrence,
)


class ScopedWindowForm(forms.ModelForm):
    """Only validates, with the rules window_save applies; the admin saves through window_save."""

    actor = None  # set by RecurringWindowAdmin.get_form

    def window_values(self) -> dict:
        """What window_save is given: the fields, and the environments and CIs."""
        fields = {name: value for name, value in self.cleaned_data.items() if name not in ("environments", "cis")}
        return {"fields": fields, "environments": list(self.cleaned_data.get("environments") or []),
                "cis": list(self.cleaned_data.get("cis") or [])}

    def clean(self):
        cleaned = super().clean()
        show_refusal(self, window_save_refusal(actor=self.actor, window=self.instance, **self.window_values()))
        return cleaned


class RecurringWindowAdmin(admin.ModelAdmin):
    """Freeze and maintenance windows: edited here (the model's clean() checks the recurrence) and saved through
    window_save, as by the API, which recomputes the window's stored occurrences so enforcement sees it at once."""

    list_filter = ["active", "recurrence", "timezone"]
    search_fields = ["name"]
    filter_horizontal = ["environments"]
    autocomplete_fields = ["cis"]
    readonly_fields = ["next_occurrences", "created_at"]
    form = ScopedWindowForm

    def get_queryset(self, request):
        # The list shows each window's next occurrence: found for all rows in the one query.
        ahead = Q(occurrences__period__endswith__gt=timezone.now())
        return super().get_queryset(request).annotate(next_start=Min("occurrences__period__startswith", filter=ahead))

    @admin.display(description="Next", ordering="next_start")
    def next_occurrence(self, obj) -> str:
        return f"{obj.next_start:%Y-%m-%d %H:%M} UTC" if obj.next_start else "-"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def save_model(self, request, obj, form, change) -> None:
        saved = window_save(actor=request.user, window=form.instance, **form.window_values())
        obj.pk, obj.created_at = saved.pk, saved.created_at
        obj._state.adding = False

    def save_related(self, request, form, formsets, change) -> None:
        pass  # window_save set the scope

    @admin.display(description="Next occurrences")
    def next_occurrences(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "Computed when saved."
        prefetch_related_objects([obj], upcoming_occurrences(timezone.now()))
        upcoming = obj.upcoming
        tz = ZoneInfo(obj.timezone)
        shown = "%a %Y-%m-%d %H:%M"
        lines = [f"{o.period.lower.astimezone(tz):{shown}} to {o.period.upper.astimezone(tz):{shown}} {obj.timezone}"
                 f" ({o.period.lower:%Y-%m-%d %H:%M} to {o.period.upper:%Y-%m-%d %H:%M} UTC)" for o in upcoming]
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines)) or "None ahead."


@admin.register(FreezeWindow)
class FreezeWindowAdmin(RecurringWindowAdmin):
    list_display = ["name", "severity", "recurrence", "timezone", "active", "next_occurrence"]
    list_filter = ["severity", *RecurringWindowAdmin.list_filter]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(RecurringWindowAdmin):
    list_display = ["name", "enforcement", "recurrence", "timezone", "active", "next_occurrence"]
    list_filter = ["enforcement", *RecurringWindowAdmin.list_filter]


class LockdownDeclareForm(forms.ModelForm):
    """The add form of a lockdown: it validates with lockdown_declare's own refusal, shown on the field it
    names, and the admin declares through lockdown_declare, so the holds on changes in flight are the service's."""

    class Meta:
        model = Lockdown
        fields = ["reason", "until", "everything", "environments", "cis", "ci_types", "tags", "max_criticality",
                  "sox_scoped", "phi", "pci"]

    actor = None  # set by LockdownAdmin.get_form

    def declaration(self) -> dict:
        """What lockdown_declare is given."""
        data = self.cleaned_data
        scope = {name: data.get(name) for name in ("everything", "ci_types", "tags", "max_criticality",
                                                   "sox_scoped", "phi", "pci")}
        return {"reason": data.get("reason") or "", "until": data.get("until"), "scope": scope,
                "environments": list(data.get("environments") or []), "cis": list(data.get("cis") or [])}

    def clean(self):
        data = super().clean()
        if not self.errors:
            show_refusal(self, lockdown_declare_refusal(actor=self.actor, now=timezone.now(), **self.declaration()))
        return data


@admin.register(Lockdown)
class LockdownAdmin(admin.ModelAdmin):
    """Stop the line. Declared by the add form and lifted by the "Lift" action, both through the calendar
    services; a lockdown's record is never edited or deleted here."""

    list_display = ["declared_at", "reason", "declared_by", "until", "lifted_at", "lifted_by"]
    list_select_related = ["declared_by", "lifted_by"]
    list_filter = ["lifted_at", "everything"]
    search_fields = ["reason", "lift_reason"]
    autocomplete_fields = ["cis"]
    filter_horizontal = ["environments"]
    actions = ["lift"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        form = super().get_form(request, obj, change=change, form=LockdownDeclareForm, **kwargs)
        form.actor = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [field.name for field in Lockdown._meta.fields if field.name != "id"] + ["environments", "cis"]

    def has_add_permission(self, request) -> bool:
        return can_declare_lockdown(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the record of a lockdown is written by the services alone

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_declare_lockdown_permission(self, request) -> bool:
        return can_declare_lockdown(request.user)

    def save_model(self, request, obj, form, change) -> None:
        declared = lockdown_declare(actor=request.user, **form.declaration())
        obj.pk, obj.declared_by, obj.declared_at = declared.pk, declared.declared_by, declared.declared_at
        obj._state.adding = False

    def save_related(self, request, form, formsets, change) -> None:
        pass  # lockdown_declare set the scope

    @admin.action(description="Lift", permissions=["declare_lockdown"])
    def lift(self, request, queryset):
        each_selected(self, request, queryset, lambda lockdown: lockdown_lift(
            actor=request.user, lockdown=lockdown, reason="lifted in the admin"), "lifted", noun="lockdown")


@admin.register(Occurrence)
class OccurrenceAdmin(RecordAdmin):
    """Occurrences are computed from their window when it is saved (and daily); never typed in."""

    list_display = ["__str__", "freeze", "maintenance", "period"]
    list_select_related = ["freeze", "maintenance"]
    list_filter = ["freeze", "maintenance"]
