"""The incident pages: the list, one incident with its ranked suspects and the parts of each score (where a release
manager confirms or dismisses one), and the suspects fragments the deployment and change pages load. Thin: a
decision calls one service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.core.pagination import page_of
from governance.itsm.correlation import MAX_REASON, suspect_decide, suspects_of_change, suspects_of_deployment
from governance.itsm.incident_permissions import can_decide_suspects, can_read_incidents
from governance.itsm.incidents import incident_detailed, incidents_listed
from governance.models.itsm import IncidentSuspect, SuspectStatus
from releases.models import Deployment

PAGE_SIZE = 50


def _reader(request) -> None:
    if not can_read_incidents(request.user):
        raise PermissionDenied("Incidents are open to those who read changes.")


@login_required
@require_GET
def incident_list(request):
    _reader(request)
    page, query = page_of(request, incidents_listed(), PAGE_SIZE)
    return render(request, "governance/itsm/incident_list.html", {"page": page, "query": query})


@login_required
@require_GET
def incident_detail(request, pk: int):
    _reader(request)
    incident = get_object_or_404(incident_detailed(), pk=pk)
    return render(request, "governance/itsm/incident_detail.html", {
        "incident": incident, "suspects": list(incident.suspects.all()),
        "may_decide": can_decide_suspects(request.user), "max_reason": MAX_REASON})


@login_required
@require_POST
def suspect_decision(request, pk: int, sid: int, decision: str):
    _reader(request)
    suspect = get_object_or_404(IncidentSuspect.objects.select_related("deployment"), pk=sid, incident_id=pk)
    status = {"confirm": SuspectStatus.CONFIRMED, "dismiss": SuspectStatus.DISMISSED}[decision]
    try:
        suspect_decide(actor=request.user, suspect=suspect, status=status, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, f"{suspect.deployment.number}: {exc.message}")
    else:
        messages.success(request, f"{suspect.deployment.number} is {SuspectStatus(status).label.lower()}.")
    return redirect("itsm:incident_detail", pk=pk)


@login_required
@require_GET
def deployment_suspects(request, number: str):
    """The deployment page's fragment: the incidents it is suspected of."""
    _reader(request)
    deployment = get_object_or_404(Deployment, number=number[:12])
    return render(request, "governance/itsm/_suspects.html", {
        "suspects": list(suspects_of_deployment(deployment)), "of": deployment.number, "by_deployment": True})


@login_required
@require_GET
def change_suspects(request, number: str):
    """The change page's fragment: the incidents its deployments are suspected of."""
    _reader(request)
    return render(request, "governance/itsm/_suspects.html", {
        "suspects": list(suspects_of_change(number[:12])), "of": number[:12], "by_deployment": False})
