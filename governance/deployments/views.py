"""The deployment pages: the list per service and environment with the queue, the start form, and the live page of
one deployment, whose waves, steps, checks and log refresh while it runs; and the plan editor (the plans by service
and environment, and one plan's executor, waves, checks and migration on one form). Thin: each action calls one
service."""

import re
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.deployments import plans, selectors, services
from governance.deployments.filters import DeploymentFilter, DeploymentPlanFilter
from governance.deployments.forms import (
    CheckForm,
    CheckFormSet,
    DeploymentStartForm,
    MigrationForm,
    PlanForm,
    WaveFormSet,
    executor_help,
    plan_initial,
)
from governance.deployments.permissions import can_edit_plans, can_read_deployments, can_run_deployments
from governance.models.changes import APPROVED_STATES, ChangeRequest
from releases.models import (
    ROLLBACK_KINDS,
    Deployment,
    DeploymentKind,
    DeploymentPlan,
    DeploymentStatus,
    ExecutorKind,
    RolloutStep,
    StepKind,
    StepState,
)
from releases.workflow import RUN_ENDS

PAGE_SIZE = 50
# The log shows the end of each step's output: the whole of it (up to 64 KiB) is in the API.
LOG_TAIL_CHARS = 4000
MAX_REASON = services.MAX_REASON


def _reader(request) -> None:
    if not can_read_deployments(request.user):
        raise PermissionDenied("Deployments are open to people with a Changeboard role.")


@login_required
@require_GET
def deployment_list(request):
    _reader(request)
    filterset = DeploymentFilter(request.GET or None, queryset=selectors.deployments_listed()
                                 .order_by("-started_at", "-pk"))
    page, query = page_of(request, filterset.qs, PAGE_SIZE)
    return render(request, "governance/deployments/deployment_list.html", {
        "filter": filterset, "page": page, "query": query, "queue": list(selectors.deployments_queued()),
        "may_run": can_run_deployments(request.user), "may_edit_plans": can_edit_plans(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def deployment_start(request):
    _reader(request)
    if not can_run_deployments(request.user):
        raise PermissionDenied("Only a release manager starts a deployment.")
    number = (request.POST.get("change") or request.GET.get("change") or "").strip().upper()[:12]
    change = (ChangeRequest.objects.prefetch_related("affected_cis").filter(number=number).first()
              if number and "\x00" not in number else None)
    form = DeploymentStartForm(request.POST or None, change=change)
    if request.method == "POST" and form.is_valid():
        try:
            deployment = services.rollout_start(actor=request.user, change=form.cleaned_data["change"],
                                                plan=form.cleaned_data["plan"],
                                                artifact=form.cleaned_data["artifact"])
        except DomainError as exc:
            refuse_if_forbidden(exc)
            for error in exc.as_errors():
                field = error["field"] if error["field"] in form.fields else None
                form.add_error(field, error["message"])
        else:
            queued = deployment.status == DeploymentStatus.QUEUED
            messages.success(request, f"{deployment.number} is {'queued' if queued else 'started'}.")
            return redirect("deployments:deployment_detail", number=deployment.number)
    return render(request, "governance/deployments/deployment_start.html", {"form": form, "change": change})


@login_required
@require_GET
def change_deployments(request, number: str):
    """The change page's deployments panel, loaded by htmx: what ran or runs under the change, and for a release
    manager, while the change is approved, the start form with its plans."""
    _reader(request)
    change = get_object_or_404(ChangeRequest.objects.prefetch_related("affected_cis"), number=number)
    form = (DeploymentStartForm(change=change)
            if can_run_deployments(request.user) and change.status in APPROVED_STATES else None)
    return render(request, "governance/deployments/_change_deployments.html", {
        "change": change, "form": form,
        "deployments": list(selectors.deployments_listed().filter(change_number=change.number).order_by("-pk")),
    })


def _waves_laid_out(deployment: Deployment, steps: list[RolloutStep]) -> list[dict]:
    """The waves as the deployment's steps were laid out when it was started: its plan may have changed since. The
    bake time comes from the plan while its wave still has that place and name."""
    planned = {(wave.position, wave.name): wave for wave in (deployment.plan.waves.all() if deployment.plan else [])}
    waves: dict[int, dict] = {}
    for step in steps:
        if step.wave_position not in waves:
            plan_wave = planned.get((step.wave_position, step.wave_name))
            waves[step.wave_position] = {"position": step.wave_position, "name": step.wave_name,
                                         "targets": step.targets, "manual_gate": False,
                                         "bake_seconds": plan_wave.bake_seconds if plan_wave else 0}
        waves[step.wave_position]["manual_gate"] |= step.kind == StepKind.MANUAL_GATE
    return [waves[position] for position in sorted(waves)]


def _live_context(request, deployment: Deployment) -> dict:
    steps = list(deployment.steps.all())
    # The step the deployment goes on with: a wave's approval when it waits at a manual gate.
    waiting = [step for step in steps if step.state == StepState.PENDING][:1]
    gate_waits = bool(waiting) and waiting[0].kind == StepKind.MANUAL_GATE
    waves = []
    for wave in _waves_laid_out(deployment, steps):
        mine = [step for step in steps if step.wave_position == wave["position"]]
        states = {step.state for step in mine}
        undone = {step.state for step in mine if step.kind in ROLLBACK_KINDS}
        state = ("failed" if StepState.FAILED in states
                 else "rolling back" if undone & {StepState.PENDING, StepState.RUNNING}
                 else "rolled back" if undone else "running" if StepState.RUNNING in states
                 else "succeeded" if mine and states <= {StepState.SUCCEEDED}
                 else "skipped" if states == {StepState.SKIPPED} else "pending")
        if gate_waits and deployment.status == DeploymentStatus.PAUSED and mine[:1] == waiting:
            state = "awaiting approval"
        waves.append({"wave": wave, "steps": mine, "state": state})
    run = deployment.kind == DeploymentKind.RUN
    may_run = run and can_run_deployments(request.user)
    finished = deployment.status in RUN_ENDS or not run
    return {
        "deployment": deployment, "waves": waves, "finished": finished,
        "log": [{"step": step, "output": step.output[-LOG_TAIL_CHARS:], "cut": len(step.output) > LOG_TAIL_CHARS}
                for step in steps if step.started_at is not None],
        "checks": list(deployment.plan.health_checks.all()) if deployment.plan is not None else [],
        "can_pause": may_run and deployment.status == DeploymentStatus.STARTED,
        # Resuming at a manual gate would only pause there again: the approval is what goes on.
        "can_resume": may_run and deployment.status == DeploymentStatus.PAUSED and not gate_waits,
        "can_abort": may_run and deployment.status in (DeploymentStatus.QUEUED, DeploymentStatus.STARTED,
                                                       DeploymentStatus.PAUSED),
        "can_approve": may_run and gate_waits
        and deployment.status in (DeploymentStatus.STARTED, DeploymentStatus.PAUSED),
        "max_reason": MAX_REASON,
    }


def _deployment(number: str) -> Deployment:
    return get_object_or_404(selectors.deployment_detailed(), number=number)


@login_required
@require_GET
def deployment_detail(request, number: str):
    _reader(request)
    deployment = _deployment(number)
    queue = (list(selectors.deployments_queued().filter(service_id=deployment.service_id,
                                                         environment_id=deployment.environment_id))
             if deployment.kind == DeploymentKind.RUN else [])
    return render(request, "governance/deployments/deployment_detail.html",
                  {**_live_context(request, deployment), "queue": queue})


@login_required
@require_GET
def deployment_live(request, number: str):
    """The part of the live page that refreshes while the deployment runs."""
    _reader(request)
    return render(request, "governance/deployments/_live.html", _live_context(request, _deployment(number)))


def _act(request, number: str, act) -> HttpResponse:
    """Call the service, say how it went, and answer with the live part (htmx) or the page."""
    _reader(request)
    deployment = _deployment(number)
    try:
        done = act(deployment)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    if request.htmx:
        return render(request, "governance/deployments/_live.html", _live_context(request, _deployment(number)))
    return redirect(reverse("deployments:deployment_detail", args=[number]))


@login_required
@require_POST
def deployment_pause(request, number: str):
    reason = request.POST.get("reason", "")

    def act(deployment: Deployment) -> str:
        services.deployment_pause(actor=request.user, deployment=deployment, reason=reason)
        return f"{deployment.number} is paused."
    return _act(request, number, act)


@login_required
@require_POST
def deployment_resume(request, number: str):
    def act(deployment: Deployment) -> str:
        services.deployment_resume(actor=request.user, deployment=deployment)
        return f"{deployment.number} goes on."
    return _act(request, number, act)


@login_required
@require_POST
def deployment_abort(request, number: str):
    reason = request.POST.get("reason", "").strip()

    def act(deployment: Deployment) -> str:
        services.deployment_abort(actor=request.user, deployment=deployment, reason=reason)
        return f"{deployment.number} is aborted: {reason}"
    return _act(request, number, act)


@login_required
@require_POST
def deployment_approve(request, number: str):
    def act(deployment: Deployment) -> str:
        services.deployment_wave_approve(actor=request.user, deployment=deployment)
        return f"The next wave of {deployment.number} is approved."
    return _act(request, number, act)


# --- the plan editor -------------------------------------------------------------------------------------------------

# What a button of the editor adds, by the formset it adds a form to, with the values an untouched form starts with
# (so a row added and left empty is skipped on save rather than refused).
ADDS = {"add_wave": ("waves", {"bake_seconds": "0"}),
        "add_check": ("checks", {"expected_status": "200", "kind": "http", "phase": "pre", "fails_when": "above"})}
SECTIONS = ("waves", "checks")
# A field of one wave or check, as the plan service names it (waves[2].targets), the API's way.
ROW_FIELD = re.compile(r"^(?P<rows>waves|checks)\[(?P<index>\d+)\]\.(?P<name>\w+)$")


def _plan_editor(request) -> None:
    if not can_edit_plans(request.user):
        raise PermissionDenied("Deployment plans are made and edited by release managers and administrators.")


@login_required
@require_GET
def plan_list(request):
    _plan_editor(request)
    filterset = DeploymentPlanFilter(request.GET or None, queryset=selectors.plans_listed())
    page, query = page_of(request, filterset.qs, PAGE_SIZE)
    return render(request, "governance/deployments/plan_list.html", {"filter": filterset, "page": page,
                                                                       "query": query})


@login_required
@require_GET
def plan_executor_help(request):
    """The help and example of the executor kind picked, swapped in beside the settings as the kind changes."""
    _plan_editor(request)
    return render(request, "governance/deployments/plan_executor_help.html",
                  {"executor": executor_help(request.GET.get("executor", ""))})


def _kept(formset: forms.BaseFormSet) -> list[forms.Form]:
    """The forms of a valid formset that are saved: not removed, and not added and left empty."""
    return [form for form in formset.forms if form.cleaned_data and form not in formset.deleted_forms]


def _with_added_form(data, action: str):
    """The posted data with one more (untouched) form in the formset the button adds to."""
    prefix, untouched = ADDS[action]
    data = data.copy()
    total = data.get(f"{prefix}-TOTAL_FORMS", "")
    if total.isdigit() and int(total) < plans.MAX_WAVES:
        data[f"{prefix}-TOTAL_FORMS"] = str(int(total) + 1)
        for name, value in untouched.items():
            data[f"{prefix}-{total}-{name}"] = value
    return data


@dataclass
class PlanEditor:
    """The editor's forms, bound to what was posted or holding the saved plan."""

    plan: DeploymentPlan | None
    form: PlanForm
    waves: forms.BaseFormSet
    checks: forms.BaseFormSet
    migration: MigrationForm
    section_errors: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in SECTIONS})

    @classmethod
    def of(cls, request, plan: DeploymentPlan | None) -> "PlanEditor":
        initial = (plan_initial(plans.plan_as_input(plan)) if plan is not None else
                   {"plan": {"executor": ExecutorKind.COMMAND, "rollout_repeatable": True}, "waves": [],
                    "checks": [], "migration": {}})
        data = request.POST if request.method == "POST" else None
        action = request.POST.get("editor_action", "") if data is not None else ""
        if action in ADDS:
            data = _with_added_form(data, action)
        waves = WaveFormSet(data, prefix="waves", initial=initial["waves"])
        if plan is None and data is None:
            waves.extra = 1  # a new plan starts with a wave to fill in
        return cls(plan=plan, form=PlanForm(data, plan=plan, initial=initial["plan"]), waves=waves,
                   checks=CheckFormSet(data, prefix="checks", initial=initial["checks"]),
                   migration=MigrationForm(data, prefix="migration", initial=initial["migration"]))

    def is_valid(self) -> bool:
        return all([self.form.is_valid(), self.waves.is_valid(), self.checks.is_valid(), self.migration.is_valid()])

    def given(self) -> plans.PlanInput:
        data = self.form.cleaned_data
        return plans.PlanInput(
            executor=data["executor"], executor_settings=data["executor_settings"],
            waves=[form.as_input() for form in self.waves.ordered_forms],
            checks=[form.as_input() for form in _kept(self.checks) if isinstance(form, CheckForm)],
            migration=self.migration.as_input(),
            require_rehearsal=data["require_rehearsal"], rollout_repeatable=data["rollout_repeatable"])

    def place(self, refusal: DomainError) -> None:
        """Each of the service's errors beside the input it names: `waves[2].targets` on the third wave's targets."""
        wave_forms = list(self.waves.ordered_forms)
        check_forms = _kept(self.checks)
        for error in refusal.as_errors():
            message, parts = error["message"], (error["field"] or "").split(".")
            row_field = ROW_FIELD.match(error["field"] or "")
            rows = {"waves": wave_forms, "checks": check_forms}
            if row_field and int(row_field["index"]) < len(rows[row_field["rows"]]):
                row = rows[row_field["rows"]][int(row_field["index"])]
                row.add_error(row_field["name"] if row_field["name"] in row.fields else None, message)
            elif parts[0] in SECTIONS:
                self.section_errors[parts[0]].append(message)
            elif parts[0] == "migration":
                self.migration.add_error(parts[-1] if parts[-1] in self.migration.fields else None, message)
            else:
                self.form.add_error(parts[0] if parts[0] in self.form.fields else None, message)

    def page(self, request, *, status: int = 200, quiet: bool = False) -> HttpResponse:
        running = (list(self.plan.deployments.filter(status__in=selectors.PLAN_IN_USE_STATUSES)
                        .values_list("number", flat=True)) if self.plan is not None else [])
        kind = self.form["executor"].value() or ExecutorKind.COMMAND
        return render(request, "governance/deployments/plan_edit.html", {
            "plan": self.plan, "form": self.form, "waves": self.waves, "checks": self.checks,
            "migration": self.migration, "section_errors": self.section_errors, "running": running,
            "executor": executor_help(str(kind)), "quiet": quiet, "refused": status >= 400}, status=status)


def _plan_save(request, plan: DeploymentPlan | None) -> HttpResponse:
    editor = PlanEditor.of(request, plan)
    if request.method == "GET":
        return editor.page(request)
    if request.POST.get("editor_action") in ADDS:
        # Nothing is saved: the page comes back with the row added and what was typed kept.
        return editor.page(request, quiet=True)
    if editor.is_valid():
        given = editor.given()
        try:
            if plan is None:
                data = editor.form.cleaned_data
                plan = plans.deployment_plan_create(actor=request.user, service=data["service"],
                                                    environment=data["environment"], plan=given)
            else:
                plan = plans.deployment_plan_update(actor=request.user, plan=plan, given=given)
        except DomainError as exc:
            refuse_if_forbidden(exc)
            editor.place(exc)
            return editor.page(request, status=exc.status)
        messages.success(request, f"{plan} saved.")
        return redirect("deployments:plan_edit", pk=plan.pk)
    return editor.page(request, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def plan_create(request):
    _plan_editor(request)
    return _plan_save(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def plan_edit(request, pk: int):
    _plan_editor(request)
    return _plan_save(request, get_object_or_404(DeploymentPlan.objects.select_related("service", "environment"),
                                                 pk=pk))
