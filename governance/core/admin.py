"""The admin's shared pieces: records shown and never written, and actions that call a service per record."""

from django.contrib import admin, messages

from governance.core.errors import DomainError


class RecordAdmin(admin.ModelAdmin):
    """A record the services write: read here, never added, edited or deleted."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RecordInline(admin.TabularInline):
    """A change's record (its requirements, decisions and moves): shown, never written from the admin."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def each_selected(modeladmin, request, queryset, service, done: str, noun: str, label=str) -> None:
    """Call `service` on each selected record as the signed-in user; a refusal is shown, never worked around."""
    succeeded = 0
    for record in queryset.order_by("pk"):
        try:
            service(record)
        except DomainError as exc:
            modeladmin.message_user(request, f"{label(record)}: {exc.message}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{succeeded} {noun}(s) {done}.", messages.SUCCESS)
