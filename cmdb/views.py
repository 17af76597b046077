from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render

from cmdb import selectors
from cmdb.filters import ConfigurationItemFilter
from cmdb.graph import NODE_HEIGHT, NODE_WIDTH, impact_picture
from cmdb.permissions import can_change_ci, can_view_cmdb
from governance.pagination import page_of

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
        "table_limit": IMPACT_TABLE_LIMIT,
    }
    return render(request, "cmdb/ci_detail.html", context)
