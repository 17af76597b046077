"""The auditor's workspace pages: the samples drawn and the form drawing one, and each sampled change's evidence,
printable and as a PDF."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from governance.audit.ledger import audit_record
from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.evidence import samples as sampling
from governance.evidence.forms import SampleForm
from governance.evidence.period import period_from
from governance.evidence.permissions import can_build_bundle, can_read_evidence
from governance.models import AuditSample


def _require_reader(user) -> None:
    if not can_read_evidence(user):
        raise PermissionDenied("The evidence is open to auditors and administrators.")


@login_required
@require_http_methods(["GET", "POST"])
def samples(request):
    """The samples drawn so far, newest first; POST draws one (an export of evidence, so for exporters only)."""
    _require_reader(request.user)
    may_draw = can_build_bundle(request.user)
    form, status = SampleForm(), 200
    if request.method == "POST":
        if not may_draw:
            raise PermissionDenied("Drawing a sample is an export of evidence: it needs the export permission.")
        form = SampleForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                sample = sampling.sample_record(actor=request.user, seed=data["seed"],
                                                period=period_from(data["start"], data["end"], data["scope"]))
            except DomainError as exc:
                refuse_if_forbidden(exc)
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Sample drawn with seed {sample.seed}: {len(sample.change_numbers)} "
                                          f"of {sample.population_size} changes.")
                return redirect("evidence:samples")
        status = 400
    page, query = page_of(request, AuditSample.objects.select_related("drawn_by"), 20)
    return render(request, "governance/evidence/samples.html",
                  {"form": form, "may_draw": may_draw, "page": page, "query": query}, status=status)


@login_required
@require_GET
def change_evidence(request, number: str):
    _require_reader(request.user)
    return HttpResponse(sampling.change_evidence_html(sampling.change_evidence(number), request=request))


@login_required
@require_GET
def change_evidence_pdf(request, number: str):
    _require_reader(request.user)
    pdf = sampling.change_evidence_pdf(number)
    audit_record("export", object_type="governance.changerequest", object_label=f"{number} evidence (PDF)",
                 context={"change": number, "bytes": len(pdf)})
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{number}-evidence.pdf"'
    return response
