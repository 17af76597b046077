from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from guardian.admin import GuardedModelAdmin

from cmdb.models import ConfigurationItem, Environment, Relationship, Team
from cmdb.permissions import can_change_ci_compliance, can_delete_ci
from cmdb.services import ci_change_refusal


@admin.register(Team)
class TeamAdmin(GuardedModelAdmin):
    """Object permissions (e.g. who may manage this team's CIs) are granted from the team's page."""

    list_display = ["name", "slug", "email"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "is_production", "region", "owner_team"]
    list_select_related = ["owner_team"]


class OutgoingInline(admin.TabularInline):
    model = Relationship
    fk_name = "source"
    autocomplete_fields = ["target"]
    extra = 0


class ConfigurationItemForm(forms.ModelForm):
    """An edit answers to the same rule as the API: the compliance flags and tier change with a reason, by those
    who may change them."""

    actor = None  # set by ConfigurationItemAdmin.get_form

    def clean(self):
        data = super().clean()
        if self.errors or self.instance.pk is None:
            return data
        original = ConfigurationItem.objects.get(pk=self.instance.pk)
        refusal = ci_change_refusal(self.actor, original, {name: data[name] for name in self.changed_data
                                                           if name in data})
        if refusal is not None:
            field = refusal.field if refusal.field in self.fields else None
            raise forms.ValidationError({field: refusal.message} if field else refusal.message)
        return data


@admin.register(ConfigurationItem)
class ConfigurationItemAdmin(admin.ModelAdmin):
    list_display = ["name", "ci_type", "criticality", "owner_team", "environment", "lifecycle_status", "sox_scoped"]
    list_filter = ["ci_type", "criticality", "lifecycle_status", "environment", "sox_scoped", "phi", "pci"]
    list_select_related = ["owner_team", "environment"]
    search_fields = ["name", "description", "github_repository"]
    autocomplete_fields = ["owner_team"]
    inlines = [OutgoingInline]
    form = ConfigurationItemForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not can_change_ci_compliance(request.user):
            return [*obj.controlled_fields, "compliance_reason"]
        return []

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or can_delete_ci(request.user, obj))

    def delete_queryset(self, request, queryset) -> None:
        refused = [ci.name for ci in queryset if not can_delete_ci(request.user, ci)]
        if refused:  # the bulk action asks has_delete_permission without an object: each CI answers here
            raise PermissionDenied(f"You may not delete {', '.join(refused)}: they are under compliance control.")
        super().delete_queryset(request, queryset)


@admin.register(Relationship)
class RelationshipAdmin(admin.ModelAdmin):
    list_display = ["source", "rel_type", "target"]
    list_filter = ["rel_type"]
    list_select_related = ["source", "target"]
    search_fields = ["source__name", "target__name"]
    autocomplete_fields = ["source", "target"]
