"""The change pages: the CAB queue, a change, its form, and CAB meetings. Thin: each write is form -> service ->
message and redirect (or, for approvals, the re-rendered approval panel); rules live in the services."""

from typing import cast

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cmdb import selectors as cmdb_selectors
from cmdb.filters import ConfigurationItemFilter
from cmdb.graph import NODE_HEIGHT, NODE_WIDTH, impact_picture
from cmdb.models import ConfigurationItem
from governance.calendar.permissions import can_read_calendar
from governance.changes import selectors
from governance.changes.advisories import change_advisories
from governance.changes.forms import (
    CabMeetingForm,
    CabMeetingRecordForm,
    CabQueueFilter,
    ChangeDecisionForm,
    ChangeListFilter,
    ChangeRequestForm,
    ChangeTransitionForm,
    Mine,
    RetrospectiveForm,
)
from governance.changes.permissions import (
    can_raise_change,
    can_view_changes,
    edit_refusal,
    is_release_manager,
    mover_facts,
    retrospective_refusal,
)
from governance.changes.services import (
    approval_record,
    cab_meeting_create,
    cab_meeting_record,
    cab_meeting_refresh_agenda,
    change_request_create,
    change_request_transition,
    change_request_update,
    change_retrospective_record,
)
from governance.changes.workflow import MOVE_LABELS, TRANSITIONS, user_moves
from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.models.changes import CabMeeting, ChangeRequest, ChangeType, Decision
from governance.models.changes import ChangeStatus as S
from governance.roles import Role

QUEUE_PAGE_SIZE = 50
IMPACT_LIMIT = 100
CI_SEARCH_LIMIT = 20


def _require_change_reader(user) -> None:
    if not can_view_changes(user):
        raise PermissionDenied("Changes are open to people with a Changeboard role.")


def _visible_change(user, number: str) -> ChangeRequest:
    return get_object_or_404(selectors.change_requests_visible_to(user), number=number)


# --- the CAB queue -----------------------------------------------------------------------------------------


@login_required
@require_GET
def cab_queue(request):
    """Open changes, those awaiting my approval first; filters narrow it, the order stays."""
    _require_change_reader(request.user)
    filterset = CabQueueFilter(request.GET or None, queryset=selectors.cab_queue(request.user), request=request)
    page, query = page_of(request, filterset.qs, QUEUE_PAGE_SIZE)
    page.object_list = list(page.object_list)
    conflicted = selectors.conflicted_change_ids(page.object_list)
    holds = selectors.change_holds(page.object_list, timezone.now())
    for change in page.object_list:
        change.has_conflict = change.pk in conflicted
        change.hold = holds.get(change.pk)
    return render(request, "governance/changes/cab_queue.html", {
        "filter": filterset, "page": page, "query": query,
        "can_raise": can_raise_change(request.user),
    })


# --- every change ------------------------------------------------------------------------------------------


@login_required
@require_GET
def change_list(request):
    """Every change in any state, most recently updated first (with `mine`, my drafts first), to find one
    again: a saved draft, or what happened in a period."""
    _require_change_reader(request.user)
    changes = selectors.change_requests_visible_to(request.user).order_by("-updated_at", "-pk")
    filterset = ChangeListFilter(request.GET or None, queryset=changes, request=request)
    page, query = page_of(request, filterset.qs, QUEUE_PAGE_SIZE)
    mine = filterset.form["mine"].value() in Mine.values
    narrowed = any(value for name, value in request.GET.items() if name not in ("mine", "dates", "page"))
    return render(request, "governance/changes/change_list.html", {
        "filter": filterset, "page": page, "query": query, "mine": mine, "narrowed": narrowed,
        "can_raise": can_raise_change(request.user),
    })


# --- one change --------------------------------------------------------------------------------------------


def _offered_moves(user, change: ChangeRequest, held: bool = False) -> list[tuple[str, str]]:
    """Buttons for the moves this person plays a part in; whether the move may happen now is the service's
    answer when they press one. A change a lockdown holds is not offered for implementation: the page shows
    the hold instead."""
    mover = mover_facts(user, change)
    return [(target, MOVE_LABELS[target]) for target in user_moves(change.status)
            if any(mover.plays(m) for m in TRANSITIONS[(change.status, target)])
            and not (held and target == S.IMPLEMENTING)]


def _may_edit(user, change: ChangeRequest) -> bool:
    return can_view_changes(user) and edit_refusal(user, change) is None


def _retrospective_pending(change: ChangeRequest) -> bool:
    return (change.change_type == ChangeType.EMERGENCY and change.approved_at is not None
            and change.retrospective_done_at is None)


def _may_review_retrospective(user, change: ChangeRequest) -> bool:
    return _retrospective_pending(change) and retrospective_refusal(user, change) is None


def _state_context(user, change: ChangeRequest, *, form: ChangeDecisionForm | None = None, error: str = "",
                   done: str = "") -> dict:
    """What the approval panel shows: the status, who still has to approve (while in review), and the decision
    forms, or why this person, who holds a role the change asks for, may not decide."""
    state = selectors.ApprovalState.of(change)
    checklist = selectors.approval_checklist(change, state)
    in_review = change.status == S.CAB_REVIEW
    refusal = selectors.decision_refusal(user, change, state)
    for row in checklist:
        row["label"] = Role(row["role"]).label if row["role"] in Role.values else row["role"]
        row["missing"] = max(0, row["needed"] - row["given"]) if in_review else 0
    form = form or ChangeDecisionForm()
    rejecting = form.is_bound and form.data.get("decision") == Decision.REJECT
    return {
        "change": change,
        "checklist": checklist,
        "still_needed": [row for row in checklist if row["missing"]],
        "can_decide": refusal is None,
        "decision_barred": selectors.decision_barred(user, change, state, refusal),
        "decision_form": form,
        "decision_error": error,
        "decision_done": done,
        # A refused rejection keeps its confirmation open with what was typed.
        "reject_open": rejecting and bool(error),
        "reject_comment": form.data.get("comment", "") if rejecting and error else "",
        "status_changes": list(change.status_changes.select_related("actor")),
    }


@login_required
@require_GET
def change_detail(request, number: str):
    _require_change_reader(request.user)
    change = _visible_change(request.user, number)
    cis = list(change.affected_cis.select_related("owner_team", "environment").order_by("criticality", "name"))
    focus = next((ci for ci in cis if str(ci.pk) == request.GET.get("ci")), cis[0] if cis else None)
    impact = cmdb_selectors.ci_impact(focus, limit=IMPACT_LIMIT) if focus else None
    own = {ci.pk for ci in cis}
    now = timezone.now()
    hold = selectors.change_hold(change, now)
    can_edit = _may_edit(request.user, change)
    context = {
        **_state_context(request.user, change),
        "hold": hold,
        "can_read_calendar": can_read_calendar(request.user),
        # Who can approve is worked out for those who can act on the answer: it reads every holder of the roles.
        "advisories": change_advisories(change, now=now, approvals=can_edit, cis=cis),
        "cis": cis,
        "focus": focus,
        "impact": impact,
        "picture": impact_picture(impact) if impact else None,
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
        "blast_radius": len(set(change.impacted_ci_ids) - own),
        "conflicts": list(selectors.change_conflicts(change)),
        "moves": _offered_moves(request.user, change, held=hold is not None),
        "can_edit": can_edit,
        "retrospective_pending": _retrospective_pending(change),
        "can_review_retrospective": _may_review_retrospective(request.user, change),
        "retrospective_form": RetrospectiveForm(),
        "factor_total": sum(factor.get("points", 0) for factor in change.risk_factors),
    }
    return render(request, "governance/changes/change_detail.html", context)


@login_required
@require_POST
def change_decide(request, number: str):
    """Approve or reject with a comment. With htmx, answers with the approval panel re-rendered (and the
    status badge and history out of band); a refusal is that panel with the reason, under the refusal's own
    status (400, 403 or 409), which the panel tells htmx to swap in all the same."""
    _require_change_reader(request.user)
    change = _visible_change(request.user, number)
    form = ChangeDecisionForm(request.POST)
    error, done, status = "", "", 200
    if not form.is_valid():
        error, status = "Choose approve or reject.", 400
    else:
        try:
            approval_record(actor=request.user, change=change, decision=form.cleaned_data["decision"],
                            comment=form.cleaned_data["comment"])
        except DomainError as exc:
            error, status = exc.message, exc.status
        else:
            done = "Your approval is recorded." if form.cleaned_data["decision"] == Decision.APPROVE else \
                "Your rejection is recorded."
            form = ChangeDecisionForm()
    change = _visible_change(request.user, number)
    if request.htmx:
        response = render(request, "governance/changes/_state.html",
                          {**_state_context(request.user, change, form=form, error=error, done=done), "oob": True},
                          status=status)
    else:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, done)
        response = redirect("governance:change_detail", number=change.number)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_POST
def change_transition(request, number: str):
    _require_change_reader(request.user)
    change = _visible_change(request.user, number)
    form = ChangeTransitionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a state to move the change to.")
        return redirect("governance:change_detail", number=change.number)
    try:
        change = change_request_transition(actor=request.user, change=change, target=form.cleaned_data["target"],
                                           reason=form.cleaned_data["reason"])
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{change.number} is now {change.get_status_display()}.")
    return redirect("governance:change_detail", number=change.number)


@login_required
@require_POST
def change_retrospective(request, number: str):
    _require_change_reader(request.user)
    change = _visible_change(request.user, number)
    form = RetrospectiveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say what the review found.")
        return redirect("governance:change_detail", number=change.number)
    try:
        change_retrospective_record(actor=request.user, change=change, notes=form.cleaned_data["notes"])
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The retrospective review is recorded.")
    return redirect("governance:change_detail", number=change.number)


# --- the change form ---------------------------------------------------------------------------------------


def _chosen_cis(form: ChangeRequestForm, initial: list[int]) -> list[ConfigurationItem]:
    """The CIs to show as chosen in the picker: what was posted, or what the change has."""
    posted = cast(QueryDict, form.data)  # a bound form here holds request.POST
    ids = [value for value in posted.getlist("cis") if value.isdigit()] if form.is_bound else initial
    return list(cmdb_selectors.configuration_items().filter(pk__in=ids).order_by("criticality", "name"))


def _add_service_error(form: ChangeRequestForm, exc: DomainError) -> None:
    field = {"affected_cis": "cis"}.get(exc.field, exc.field) if exc.field else None
    form.add_error(field if field in form.fields else None, exc.message)


def _form_page(request, form: ChangeRequestForm, change: ChangeRequest | None, status: int = 200):
    initial = form.initial.get("cis", [])
    return render(request, "governance/changes/change_form.html", {
        "form": form, "change": change, "chosen": _chosen_cis(form, initial),
        # What the saved change is warned of, shown while it is being fixed.
        "advisories": change_advisories(change, now=timezone.now()) if change is not None else [],
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def change_create(request):
    if not can_raise_change(request.user):
        raise PermissionDenied("Raising a change needs the requester role.")
    form = ChangeRequestForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                change = change_request_create(actor=request.user, cis=list(form.cleaned_data["cis"]),
                                               **form.service_fields())
            except DomainError as exc:
                refuse_if_forbidden(exc)
                _add_service_error(form, exc)
            else:
                messages.success(request, f"{change.number} saved as a draft. Submit it for review when ready.")
                return redirect("governance:change_detail", number=change.number)
        return _form_page(request, form, None, status=400)
    return _form_page(request, form, None)


@login_required
@require_http_methods(["GET", "POST"])
def change_edit(request, number: str):
    _require_change_reader(request.user)
    change = _visible_change(request.user, number)
    refusal = edit_refusal(request.user, change)
    if refusal is not None:
        refuse_if_forbidden(refusal)
        messages.error(request, refusal.message)
        return redirect("governance:change_detail", number=change.number)
    form = ChangeRequestForm(request.POST or None, initial=ChangeRequestForm.initial_for(change))
    if request.method == "POST":
        if form.is_valid():
            try:
                change = change_request_update(actor=request.user, change=change,
                                               cis=list(form.cleaned_data["cis"]), **form.changed_service_fields())
            except DomainError as exc:
                refuse_if_forbidden(exc)
                _add_service_error(form, exc)
            else:
                messages.success(request, f"{change.number} saved.")
                return redirect("governance:change_detail", number=change.number)
        return _form_page(request, form, change, status=400)
    return _form_page(request, form, change)


@login_required
@require_GET
def change_ci_search(request):
    """The CI picker's results: CIs matching `ci_q` as checkboxes, after the ones already chosen (`cis`)."""
    if not (can_raise_change(request.user) or is_release_manager(request.user)):
        raise PermissionDenied("Picking CIs is for people who raise or manage changes.")
    chosen_ids = [value for value in request.GET.getlist("cis") if value.isdigit()]
    chosen = list(cmdb_selectors.configuration_items().filter(pk__in=chosen_ids).order_by("criticality", "name"))
    query = request.GET.get("ci_q", "").strip()
    matches = []
    if query:
        found = ConfigurationItemFilter({"q": query}, queryset=cmdb_selectors.configuration_items()).qs
        matches = list(found.exclude(pk__in=chosen_ids).order_by("criticality", "name")[:CI_SEARCH_LIMIT])
    return render(request, "governance/changes/_ci_picker.html", {
        "chosen": chosen, "matches": matches, "query": query, "limit": CI_SEARCH_LIMIT,
    })


# --- CAB meetings ------------------------------------------------------------------------------------------


def _require_meeting_reader(user) -> None:
    if not (user.is_authenticated and user.has_perm("governance.view_cabmeeting")):
        raise PermissionDenied("CAB meetings are open to people with a Changeboard role.")


@login_required
@require_http_methods(["GET", "POST"])
def cab_meetings(request):
    _require_meeting_reader(request.user)
    can_organise = request.user.has_perm("governance.add_cabmeeting")
    form = CabMeetingForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not can_organise:
            raise PermissionDenied("Release managers organise CAB meetings.")
        if form.is_valid():
            try:
                meeting = cab_meeting_create(actor=request.user, title=form.cleaned_data["title"],
                                             starts_at=form.cleaned_data["starts_at"],
                                             attendees=form.cleaned_data["attendees"])
            except DomainError as exc:
                refuse_if_forbidden(exc)
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                count = meeting.agenda.count()
                messages.success(request, f"Meeting created with {count} change{'s' if count != 1 else ''} "
                                          "awaiting CAB review on its agenda.")
                return redirect("governance:cab_meeting_detail", pk=meeting.pk)
        status = 400
    meetings = (CabMeeting.objects.select_related("organiser")
                .annotate(items=Count("agenda", distinct=True), people=Count("attendees", distinct=True))
                .order_by("-starts_at", "-pk"))
    page, query = page_of(request, meetings, QUEUE_PAGE_SIZE)
    return render(request, "governance/changes/cab_meetings.html", {
        "page": page, "query": query, "form": form, "can_organise": can_organise,
    }, status=status)


def _meeting(pk: int) -> CabMeeting:
    return get_object_or_404(CabMeeting.objects.select_related("organiser").prefetch_related(
        Prefetch("attendees", queryset=get_user_model().objects.order_by("username"))), pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def cab_meeting_detail(request, pk: int):
    _require_meeting_reader(request.user)
    meeting = _meeting(pk)
    can_record = request.user.has_perm("governance.change_cabmeeting")
    agenda = list(meeting.agenda.select_related("change__requester", "change__environment"))
    form = CabMeetingRecordForm(request.POST or None, meeting=meeting, agenda=agenda)
    status = 200
    if request.method == "POST":
        if not can_record:
            raise PermissionDenied("Release managers keep the minutes of CAB meetings.")
        if form.is_valid():
            try:
                cab_meeting_record(actor=request.user, meeting=meeting, minutes=form.cleaned_data["minutes"],
                                   outcomes=form.outcomes(), attendees=form.cleaned_data["attendees"])
            except DomainError as exc:
                refuse_if_forbidden(exc)
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "Minutes and outcomes saved.")
                return redirect("governance:cab_meeting_detail", pk=meeting.pk)
        status = 400
    summaries = selectors.approval_summaries([item.change for item in agenda])
    for item in agenda:
        # The page's own attribute on the rows it lists, which the template reads through form.items; the stubs
        # know the model's fields only.
        item.summary = summaries[item.change_id]  # type: ignore[attr-defined]
    return render(request, "governance/changes/cab_meeting_detail.html", {
        "meeting": meeting, "agenda": agenda, "form": form, "can_record": can_record,
    }, status=status)


@login_required
@require_POST
def cab_meeting_refresh(request, pk: int):
    _require_meeting_reader(request.user)
    meeting = _meeting(pk)
    before = meeting.agenda.count()
    try:
        cab_meeting_refresh_agenda(actor=request.user, meeting=meeting)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        added = meeting.agenda.count() - before
        messages.success(request, f"Agenda refreshed: {added} change{'s' if added != 1 else ''} added.")
    return redirect("governance:cab_meeting_detail", pk=meeting.pk)
