"""The admin's view of API tokens: their scope may be changed and they may be revoked, never issued."""

from django.contrib import admin

from governance.access.services import api_token_revoke, api_token_scope_set
from governance.core.admin import each_selected
from governance.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued from the tokens page or `manage.py create_api_token`, where the secret is shown once."""

    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "created_by", "expires_at", "last_used_at",
                       "revoked_at", "revoked_by"]
    exclude = ["digest"]
    # The scope is what an administrator may still narrow or widen after issue; the ledger records it.
    autocomplete_fields = ["services"]
    filter_horizontal = ["environments"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def save_related(self, request, form, formsets, change) -> None:
        api_token_scope_set(actor=request.user, token=form.instance, services=list(form.cleaned_data["services"]),
                            environments=list(form.cleaned_data["environments"]))

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        each_selected(self, request, queryset, lambda token: api_token_revoke(actor=request.user, token=token),
                      "revoked", noun="token")
