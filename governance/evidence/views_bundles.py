"""The evidence bundles page: the bundles built, the form starting one, each building bundle's progress refreshed
by htmx, and the download of a ready one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.evidence.bundle import bundle_download, bundle_request
from governance.evidence.forms import SampleForm
from governance.evidence.permissions import can_build_bundle, require_evidence_reader
from governance.models import EvidenceBundle


@login_required
@require_http_methods(["GET", "POST"])
def bundles(request):
    """The bundles, newest first; POST starts one (an export, so for exporters only)."""
    require_evidence_reader(request.user)
    may_build = can_build_bundle(request.user)
    form, status = SampleForm(), 200
    if request.method == "POST":
        if not may_build:
            raise PermissionDenied("Building an evidence bundle needs the audit export permission.")
        form = SampleForm(request.POST)
        bundle = form.submitted(lambda **given: bundle_request(actor=request.user, **given))
        if bundle is not None:
            messages.success(request, f"Evidence bundle {bundle.pk} is queued; its progress shows below.")
            return redirect("evidence:bundles")
        status = 400
    page, query = page_of(request, EvidenceBundle.objects.select_related("requested_by"), 20)
    return render(request, "governance/evidence/bundles.html",
                  {"form": form, "may_build": may_build, "page": page, "query": query}, status=status)


@login_required
@require_GET
def bundle_progress(request, pk: int):
    """One bundle's row; while it builds, the row asks for itself again every 2 seconds."""
    require_evidence_reader(request.user)
    bundle = get_object_or_404(EvidenceBundle.objects.select_related("requested_by"), pk=pk)
    return render(request, "governance/evidence/_bundle_row.html", {"bundle": bundle})


@login_required
@require_GET
def bundle_file(request, pk: int):
    bundle = get_object_or_404(EvidenceBundle, pk=pk)
    try:
        file = bundle_download(actor=request.user, bundle=bundle)
    except DomainError as exc:  # forbidden, or not (or no longer) there to download
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
        return redirect("evidence:bundles")
    return FileResponse(file, as_attachment=True, filename=bundle.file_name, content_type="application/zip")
