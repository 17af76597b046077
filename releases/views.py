"""The release pages: artifacts, how far each got along the chain, and what the gate asks of each environment.
Builds, scans and promotions are written by pipelines through the API; a release manager may end by hand a
deployment whose end never came."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from cmdb.models import ConfigurationItem
from governance.errors import DomainError, refuse_if_forbidden
from governance.gate import services as gate_services
from governance.gate.permissions import can_end_deployment
from governance.pagination import page_of
from releases import selectors
from releases.filters import ArtifactFilter
from releases.models import Deployment
from releases.permissions import can_view_releases

PAGE_SIZE = 50
SERVICE_PANEL_SIZE = 10


def _require_reader(user) -> None:
    if not can_view_releases(user):
        raise PermissionDenied("Releases are open to people with a Changeboard role.")


@login_required
@require_GET
def artifact_list(request):
    _require_reader(request.user)
    filterset = ArtifactFilter(request.GET or None, queryset=selectors.artifacts())
    page, query = page_of(request, filterset.qs, PAGE_SIZE)
    environments = selectors.chain()
    rows = [(artifact, selectors.promotion_path(artifact, environments)) for artifact in page]
    return render(request, "releases/artifact_list.html", {
        "filter": filterset, "page": page, "rows": rows, "query": query,
    })


@login_required
@require_GET
def artifact_detail(request, digest: str):
    _require_reader(request.user)
    artifact = get_object_or_404(selectors.artifacts(), digest=digest)
    return render(request, "releases/artifact_detail.html", {
        "artifact": artifact,
        "path": selectors.promotion_path(artifact, selectors.chain()),
        "deployments": selectors.artifact_deployments(artifact),
        "can_abandon": can_end_deployment(request.user),
        "provenance": json.dumps(artifact.provenance, indent=2, sort_keys=True) if artifact.provenance else "",
    })


@login_required
@require_GET
def service_artifacts(request, pk: int):
    """The latest builds of a CI, for its CMDB page (loaded in place by htmx); nothing when it has none."""
    _require_reader(request.user)
    service = get_object_or_404(ConfigurationItem, pk=pk)
    builds = list(selectors.service_artifacts(service)[:SERVICE_PANEL_SIZE + 1])
    environments = selectors.chain()
    return render(request, "releases/_service_artifacts.html", {
        "service": service, "more": len(builds) > SERVICE_PANEL_SIZE,
        "rows": [(artifact, selectors.promotion_path(artifact, environments))
                 for artifact in builds[:SERVICE_PANEL_SIZE]],
    })


@login_required
@require_POST
def deployment_abandon(request, number: str):
    _require_reader(request.user)
    deployment = get_object_or_404(Deployment.objects.select_related("artifact", "service", "environment"),
                                   number=number)
    try:
        gate_services.deployment_abandon(actor=request.user, deployment=deployment,
                                         reason=request.POST.get("reason", ""))
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{deployment.number} is ended: {deployment.service} may be deployed to "
                                  f"{deployment.environment} again.")
    return redirect("releases:artifact_detail", digest=deployment.artifact.digest)
