from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from cmdb.models import ConfigurationItem, Environment, Relationship, Team


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


@admin.register(ConfigurationItem)
class ConfigurationItemAdmin(admin.ModelAdmin):
    list_display = ["name", "ci_type", "criticality", "owner_team", "environment", "lifecycle_status", "sox_scoped"]
    list_filter = ["ci_type", "criticality", "lifecycle_status", "environment", "sox_scoped", "phi", "pci"]
    list_select_related = ["owner_team", "environment"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["owner_team"]
    inlines = [OutgoingInline]


@admin.register(Relationship)
class RelationshipAdmin(admin.ModelAdmin):
    list_display = ["source", "rel_type", "target"]
    list_filter = ["rel_type"]
    list_select_related = ["source", "target"]
    search_fields = ["source__name", "target__name"]
    autocomplete_fields = ["source", "target"]
