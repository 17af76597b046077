"""The release pages: artifacts, how far each got along the chain, and what the gate asks of each environment.
Builds, scans and promotions are written by pipelines through the API."""

import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from cmdb.models import ConfigurationItem
from governance.core.pagination import page_of
from releases import selectors
from releases.filters import ArtifactFilter
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
