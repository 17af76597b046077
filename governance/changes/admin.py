"""The admin's view of changes, approvals, policies, standard templates and CAB meetings: every move and
decision goes through the changes' services."""

from operator import attrgetter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from cmdb.choices import CIType
from governance.changes.permissions import can_approve_templates
from governance.changes.services import (
    approval_record,
    cab_meeting_create,
    cab_meeting_record,
    cab_meeting_refresh_agenda,
    change_request_transition,
)
from governance.changes.standard import (
    TEMPLATE_FIELDS,
    standard_template_approve,
    standard_template_create,
    standard_template_update,
    standard_template_write_refusal,
)
from governance.changes.workflow import MOVE_LABELS
from governance.core.admin import RecordAdmin, RecordInline, each_selected, show_refusal
from governance.core.errors import DomainError
from governance.models import (
    Approval,
    ApprovalPolicy,
    ApprovalRequirement,
    CabAgendaItem,
    CabMeeting,
    ChangeRequest,
    ChangeStatusChange,
    Decision,
    PolicyRequirement,
    StandardChangeTemplate,
)
from governance.models import ChangeStatus as S


class RequirementInline(RecordInline):
    model = ApprovalRequirement
    fields = ["revision", "role", "count", "policies"]


class ApprovalInline(RecordInline):
    model = Approval
    fields = ["revision", "approver", "role", "decision", "comment", "created_at"]


class StatusChangeInline(RecordInline):
    model = ChangeStatusChange
    fields = ["at", "from_status", "to_status", "actor", "reason"]


# Changes are named by their number in an action's messages.
CHANGES = {"noun": "change", "label": attrgetter("number")}


def _move_action(target: str, description: str):
    """An admin action making one person's move through `change_request_transition`."""

    def move(modeladmin, request, queryset):
        each_selected(modeladmin, request, queryset, lambda change: change_request_transition(
            actor=request.user, change=change, target=target, reason="moved in the admin"),
            f"moved to {S(target).label}", **CHANGES)

    move.__name__ = f"move_to_{target}"
    return admin.action(description=description)(move)


# One action per move a person may make (tests check this list against the workflow's table).
MOVE_ACTIONS = [_move_action(target, label) for target, label in MOVE_LABELS.items()]


@admin.register(ChangeRequest)
class ChangeRequestAdmin(admin.ModelAdmin):
    """Changes are raised and edited in Changeboard's pages and API. Here every field is read-only: the status
    moves, and approvals are given, only by the actions below, which call the same services (so the lifecycle
    table and segregation of duties hold in the admin too)."""

    list_display = ["number", "title", "change_type", "status", "risk_level", "requester", "environment",
                    "planned_start", "revision"]
    list_filter = ["status", "change_type", "risk_level", "environment"]
    list_select_related = ["requester", "environment"]
    search_fields = ["number", "title"]
    inlines = [RequirementInline, ApprovalInline, StatusChangeInline]
    actions = ["approve_as_me", "reject_as_me", *MOVE_ACTIONS]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields] + ["affected_cis"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a change is evidence: it is cancelled, never deleted

    @admin.action(description="Approve as me")
    def approve_as_me(self, request, queryset):
        each_selected(self, request, queryset, lambda change: approval_record(
            actor=request.user, change=change, decision=Decision.APPROVE, comment="approved in the admin"),
            "approved by you", **CHANGES)

    @admin.action(description="Reject as me (asks why)")
    def reject_as_me(self, request, queryset):
        """A rejection says why: this action first asks for the reason (the requester is told it), then
        rejects each selected change with it through the approval service."""
        form = RejectionForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            each_selected(self, request, queryset, lambda change: approval_record(
                actor=request.user, change=change, decision=Decision.REJECT, comment=form.cleaned_data["reason"]),
                "rejected by you", **CHANGES)
            return None
        return TemplateResponse(request, "admin/governance/changerequest/reject_confirmation.html", {
            **self.admin_site.each_context(request), "title": "Reject changes: why?", "opts": self.model._meta,
            "changes": queryset.order_by("pk"), "form": form, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })


class RejectionForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), strip=True,
                             label="Why reject them", help_text="Required: the requesters are told.")


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    """Read-only: a decision is recorded by its approver through the approval service, never typed in here."""

    list_display = ["change", "revision", "approver", "role", "decision", "created_at"]
    list_filter = ["decision", "role"]
    list_select_related = ["change", "approver", "role"]
    search_fields = ["change__number", "approver__username"]


class PolicyRequirementInline(admin.TabularInline):
    model = PolicyRequirement
    extra = 1


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    """A change needs the approvals of every active policy whose conditions it meets (largest count per role)."""

    list_display = ["name", "active", "change_types", "risk_levels", "production_only", "max_criticality",
                    "sox_scoped", "phi", "pci"]
    list_filter = ["active", "production_only", "sox_scoped", "phi", "pci"]
    search_fields = ["name", "description"]
    filter_horizontal = ["environments"]
    inlines = [PolicyRequirementInline]


class StandardChangeTemplateForm(forms.ModelForm):
    """Validates with the template services' own refusal (the model's checks are the form's); the admin then
    writes through those services, so an edit makes a new version that awaits approval."""

    ci_types = forms.MultipleChoiceField(choices=CIType.choices, required=False, label="CI types",
                                         widget=forms.CheckboxSelectMultiple,
                                         help_text=StandardChangeTemplate._meta.get_field("ci_types").help_text)

    class Meta:
        model = StandardChangeTemplate
        fields = [*TEMPLATE_FIELDS, "cis", "environments"]

    actor = None  # set by StandardChangeTemplateAdmin.get_form

    def template_values(self) -> dict:
        """What the template services are given: the fields, and the CIs and environments."""
        return {**{name: self.cleaned_data[name] for name in TEMPLATE_FIELDS},
                "cis": list(self.cleaned_data["cis"]), "environments": list(self.cleaned_data["environments"])}

    def clean(self):
        cleaned = super().clean()
        fields = {name: cleaned[name] for name in TEMPLATE_FIELDS if name in cleaned}
        show_refusal(self, standard_template_write_refusal(self.actor, creating=self.instance.pk is None,
                                                           fields=fields))
        return cleaned


@admin.register(StandardChangeTemplate)
class StandardChangeTemplateAdmin(admin.ModelAdmin):
    """Standard change models: what each covers, its version, and who approved that version. Saving an edit
    makes a new version, approved by the "Approve" action by a CAB member or release manager who did not make
    it; until then no change can be raised from it."""

    form = StandardChangeTemplateForm
    list_display = ["name", "active", "max_risk_level", "version", "approved", "approved_by", "approved_at",
                    "edited_by"]
    list_select_related = ["approved_by", "edited_by"]
    list_filter = ["active", "max_risk_level"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["cis"]
    filter_horizontal = ["environments"]
    readonly_fields = ["version", "edited_by", "edited_at", "approved_by", "approved_at"]
    actions = ["approve"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def save_model(self, request, obj, form, change) -> None:
        if change:
            saved = standard_template_update(actor=request.user, template=obj, **form.template_values())
        else:
            saved = standard_template_create(actor=request.user, **form.template_values())
        obj.pk, obj.version, obj.approved_by = saved.pk, saved.version, saved.approved_by
        obj._state.adding = False
        if not saved.approved:
            self.message_user(request, f"Version {saved.version} of {saved.name} awaits approval by a CAB member "
                                       "or a release manager; until then no change can be raised from it.",
                              messages.WARNING)

    def save_related(self, request, form, formsets, change) -> None:
        pass  # the template services set the scope

    @admin.display(boolean=True, description="Approved")
    def approved(self, obj) -> bool:
        return obj.approved

    def has_approve_permission(self, request) -> bool:
        return can_approve_templates(request.user)

    @admin.action(description="Approve this version of the selected templates", permissions=["approve"])
    def approve(self, request, queryset):
        each_selected(self, request, queryset, lambda template: standard_template_approve(
            actor=request.user, template=template), "approved", noun="template")


class AgendaInline(RecordInline):
    model = CabAgendaItem
    fields = ["position", "change", "outcome", "notes"]


@admin.register(CabMeeting)
class CabMeetingAdmin(admin.ModelAdmin):
    """Written by the CAB meeting services: a new meeting gets its agenda of the changes in review, an edit
    goes through cab_meeting_record; the agenda itself is read-only here."""

    list_display = ["title", "starts_at", "organiser"]
    list_select_related = ["organiser"]
    search_fields = ["title", "minutes"]
    readonly_fields = ["organiser", "created_at"]
    filter_horizontal = ["attendees"]
    inlines = [AgendaInline]
    actions = ["refresh_agenda"]

    def save_model(self, request, obj, form, change) -> None:
        given = {name: form.cleaned_data[name] for name in ("title", "starts_at", "minutes", "attendees")}
        if change:
            cab_meeting_record(actor=request.user, meeting=obj, **given)
            return
        meeting = cab_meeting_create(actor=request.user, **given)
        obj.pk, obj.organiser, obj.created_at = meeting.pk, meeting.organiser, meeting.created_at
        obj._state.adding = False

    def save_related(self, request, form, formsets, change) -> None:
        # Not form.save_m2m(): the CAB meeting services set the attendees. The agenda inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.action(description="Add the changes now in review to the agenda")
    def refresh_agenda(self, request, queryset):
        for meeting in queryset:
            try:
                cab_meeting_refresh_agenda(actor=request.user, meeting=meeting)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, f"{queryset.count()} agenda(s) refreshed.", messages.SUCCESS)
