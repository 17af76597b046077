"""The gate's pages: the log of every question pipelines asked, with the answer and every reason given, and the
release manager's ending by hand of a deployment whose end never came (offered on the build's page)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.gate import selectors, services
from governance.gate.filters import DeploymentCheckFilter
from governance.gate.permissions import can_read_gate_log
from releases.models import Deployment
from releases.permissions import can_view_releases

PAGE_SIZE = 50


@login_required
@require_GET
def gate_log(request):
    if not can_read_gate_log(request.user):
        raise PermissionDenied("The gate log is open to people who follow changes.")
    filterset = DeploymentCheckFilter(request.GET or None, queryset=selectors.deployment_checks())
    page, query = page_of(request, filterset.qs, PAGE_SIZE)
    return render(request, "governance/gate/gate_log.html", {"filter": filterset, "page": page, "query": query})


@login_required
@require_POST
def deployment_abandon(request, number: str):
    if not can_view_releases(request.user):
        raise PermissionDenied("Releases are open to people with a Changeboard role.")
    deployment = get_object_or_404(Deployment.objects.select_related("artifact"), number=number)
    try:
        deployment = services.deployment_abandon(actor=request.user, deployment=deployment,
                                                 reason=request.POST.get("reason", ""))
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{deployment.number} is ended: {deployment.service} may be deployed to "
                                  f"{deployment.environment} again.")
    return redirect("releases:artifact_detail", digest=deployment.artifact.digest)
