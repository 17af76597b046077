"""The admin's shared pieces: records shown and never written, actions that call a service per record, and
forms that validate with a service's own refusal before the admin writes through that service."""

from django import forms
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


def show_refusal(form: forms.Form, refusal: DomainError | None) -> None:
    """Show a service's refusal on the form, on the field it names, so the form is invalid and nothing is written."""
    if refusal is not None:
        form.add_error(refusal.field if refusal.field in form.fields else None, refusal.message)
