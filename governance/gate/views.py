"""The gate log page: every question pipelines asked the gate, the answer, and every reason given."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.http import require_GET

from governance.gate import selectors
from governance.gate.filters import DeploymentCheckFilter
from governance.gate.permissions import can_read_gate_log
from governance.pagination import page_of

PAGE_SIZE = 50


@login_required
@require_GET
def gate_log(request):
    if not can_read_gate_log(request.user):
        raise PermissionDenied("The gate log is open to people who follow changes.")
    filterset = DeploymentCheckFilter(request.GET or None, queryset=selectors.deployment_checks())
    page, query = page_of(request, filterset.qs, PAGE_SIZE)
    return render(request, "governance/gate/gate_log.html", {"filter": filterset, "page": page, "query": query})
