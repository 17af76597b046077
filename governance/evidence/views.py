"""The auditor's workspace pages: the home (a period's controls, exceptions with the auditor's notes, recent
bundles), the samples drawn and the form drawing one, and each sampled change's evidence, printable and as a PDF."""

from datetime import UTC, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from governance.audit.ledger import audit_record
from governance.core.pagination import page_of
from governance.evidence import samples as sampling
from governance.evidence.controls import control_tests
from governance.evidence.exceptions import period_exceptions
from governance.evidence.forms import PeriodForm, SampleForm
from governance.evidence.permissions import can_build_bundle, require_evidence_reader
from governance.evidence.reconciliation import reconcile
from governance.models import AuditorNote, AuditSample, EvidenceBundle, EvidenceScope

# The period the home opens on: the last 90 days, today included.
DEFAULT_DAYS = 90



def _words(code: str) -> str:
    return code.replace("_", " ").capitalize()


@login_required
@require_GET
def home(request):
    """The auditor's home: for a period and scope, the control results at a glance, the reconciliation's counts,
    the exceptions to look at with the notes on each, and the recent bundles to download."""
    require_evidence_reader(request.user)
    today = timezone.localdate(timezone=UTC)
    form = PeriodForm(request.GET or {"start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
                                      "end": today.isoformat(), "scope": EvidenceScope.ALL})
    context: dict = {"form": form, "may_build": can_build_bundle(request.user),
                     "bundles": list(EvidenceBundle.objects.select_related("requested_by")[:5])}
    period = form.period()
    if period is None:
        return render(request, "governance/evidence/home.html", context, status=400)
    exceptions = period_exceptions(period)
    noted = dict(AuditorNote.objects.filter(exception_key__in=[e.key for e in exceptions])
                 .values("exception_key").annotate(count=Count("pk")).values_list("exception_key", "count"))
    reconciliation = reconcile(period)
    context.update(period=period, controls=control_tests(period, exceptions=exceptions),
                   reconciliation=reconciliation,
                   counts=[(_words(name), count) for name, count in reconciliation.counts.items()],
                   exceptions=[{"exception": e, "kind": _words(e.kind), "notes": noted.get(e.key, 0)}
                               for e in exceptions])
    return render(request, "governance/evidence/home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def samples(request):
    """The samples drawn so far, newest first; POST draws one (an export of evidence, so for exporters only)."""
    require_evidence_reader(request.user)
    may_draw = can_build_bundle(request.user)
    form, status = SampleForm(), 200
    if request.method == "POST":
        if not may_draw:
            raise PermissionDenied("Drawing a sample is an export of evidence: it needs the export permission.")
        form = SampleForm(request.POST)
        sample = form.submitted(lambda **given: sampling.sample_record(actor=request.user, **given))
        if sample is not None:
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
    require_evidence_reader(request.user)
    return HttpResponse(sampling.change_evidence_html(sampling.change_evidence(number), request=request))


@login_required
@require_GET
def change_evidence_pdf(request, number: str):
    require_evidence_reader(request.user)
    pdf = sampling.change_evidence_pdf(number)
    audit_record("export", object_type="governance.changerequest", object_label=f"{number} evidence (PDF)",
                 context={"change": number, "bytes": len(pdf)})
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{number}-evidence.pdf"'
    return response
