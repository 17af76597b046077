from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from cmdb import selectors
from cmdb.filters import ConfigurationItemFilter
from cmdb.forms import CIComplianceForm
from cmdb.graph import NODE_HEIGHT, NODE_WIDTH, impact_picture
from cmdb.models import ConfigurationItem
from cmdb.permissions import can_change_ci, can_change_ci_compliance, can_view_cmdb
from cmdb.services import ci_compliance_set
from governance.core.errors import DomainError
from governance.core.pagination import page_of

IMPACT_TABLE_LIMIT = 200


def _require_cmdb_reader(user) -> None:
    if not can_view_cmdb(user):
        raise PermissionDenied("Reading the CMDB needs a Changeboard role.")


@login_required
def ci_list(request):
    _require_cmdb_reader(request.user)
    filterset = ConfigurationItemFilter(request.GET or None, queryset=selectors.configuration_items())
    page, query = page_of(request, filterset.qs, 50)
    return render(request, "cmdb/ci_list.html", {"filter": filterset, "page": page, "query": query})


@login_required
def ci_detail(request, pk: int):
    _require_cmdb_reader(request.user)
    ci = get_object_or_404(selectors.configuration_items(), pk=pk)
    impact = selectors.ci_impact(ci, limit=IMPACT_TABLE_LIMIT)
    context = {
        "ci": ci,
        "outgoing": selectors.relationships().filter(source=ci).select_related("target__owner_team"),
        "incoming": selectors.relationships().filter(target=ci).select_related("source__owner_team"),
        "impact": impact,
        "dependents": impact.labelled(impact.dependents),
        "dependencies": impact.labelled(impact.dependencies),
        "picture": impact_picture(impact),
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
        "can_change": can_change_ci(request.user, ci),
        "can_change_compliance": can_change_ci_compliance(request.user),
        "table_limit": IMPACT_TABLE_LIMIT,
    }
    return render(request, "cmdb/ci_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def ci_compliance(request, pk: int):
    """Where a compliance officer or an admin changes a CI's flags and tier, saying why."""
    if not can_change_ci_compliance(request.user):
        raise PermissionDenied("Compliance officers and admins change a CI's compliance flags and tier.")
    ci = get_object_or_404(selectors.configuration_items(), pk=pk)
    form = CIComplianceForm(request.POST or None, instance=ConfigurationItem(**{
        name: getattr(ci, name) for name in CIComplianceForm.Meta.fields}))
    if request.method == "POST" and form.is_valid():
        try:
            ci_compliance_set(actor=request.user, ci=ci, values=form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"The compliance flags and tier of {ci.name} are saved, with the reason.")
            return redirect("cmdb:ci_detail", pk=ci.pk)
    return render(request, "cmdb/ci_compliance.html", {"ci": ci, "form": form})
