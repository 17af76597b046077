"""The deployment pages: the list per service and environment with the queue, the start form, and the live page of
one deployment, whose waves, steps, checks and log refresh while it runs. Thin: each action calls one service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.deployments import selectors, services
from governance.deployments.filters import DeploymentFilter
from governance.deployments.forms import DeploymentStartForm
from governance.deployments.permissions import can_read_deployments, can_run_deployments
from governance.models.changes import ChangeRequest
from releases.models import ROLLBACK_KINDS, Deployment, DeploymentKind, DeploymentStatus, StepKind, StepState
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
        "may_run": can_run_deployments(request.user)})


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


def _live_context(request, deployment: Deployment) -> dict:
    steps = list(deployment.steps.all())
    # The step the deployment goes on with: a wave's approval when it waits at a manual gate.
    waiting = [step for step in steps if step.state == StepState.PENDING][:1]
    gate_waits = bool(waiting) and waiting[0].kind == StepKind.MANUAL_GATE
    waves = []
    for wave in (deployment.plan.waves.all() if deployment.plan is not None else []):
        mine = [step for step in steps if step.wave_position == wave.position]
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
