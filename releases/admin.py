from django.contrib import admin

from releases.models import GatePolicy


@admin.register(GatePolicy)
class GatePolicyAdmin(admin.ModelAdmin):
    """What the gate asks of a build per environment; environments without one get the default (signatures in
    production, no failed scan)."""

    list_display = ["environment", "require_signature", "required_scans", "block_failed_scans", "max_critical",
                    "max_high"]
    list_select_related = ["environment"]
