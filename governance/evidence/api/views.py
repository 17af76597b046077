"""A period's population, exceptions, control tests and reconciliation as JSON for GRC tools, read-only, for
those who read the evidence: GET /audit/population/ (paged), /audit/exceptions/, /audit/controls/ and
/audit/reconciliation/, each for `start`, `end` and `scope`."""

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.core.errors import InvalidInput
from governance.core.pagination import StandardPagination
from governance.evidence.api.serializers import (
    ControlsSerializer,
    ExceptionsSerializer,
    PopulationPageSerializer,
    ReconciliationSerializer,
    period_data,
)
from governance.evidence.api.views_access import EvidenceReader
from governance.evidence.controls import control_tests
from governance.evidence.exceptions import period_exceptions
from governance.evidence.period import Period, period_from
from governance.evidence.population import matched, population_row, production_deployments, row_dict
from governance.evidence.reconciliation import reconcile
from governance.models import EvidenceScope

PAGE_SIZE, MAX_PAGE_SIZE = 100, StandardPagination.max_page_size
PERIOD_PARAMETERS = [
    OpenApiParameter("start", str, required=True, description="First day (2026-01-01) or moment of the period."),
    OpenApiParameter("end", str, required=True, description="Last day (counted whole) or moment; at most 400 days "
                                                            "after the start."),
    OpenApiParameter("scope", str, enum=EvidenceScope.values, description="CIs in scope; default all."),
]


def _period(request) -> Period:
    params = request.query_params
    return period_from(params.get("start", ""), params.get("end", ""), params.get("scope", EvidenceScope.ALL))


def _whole_number(request, name: str, default: int, most: int) -> int:
    given = request.query_params.get(name)
    if given is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", given) or not 1 <= int(given) <= most:
        raise InvalidInput(f"{name} is a whole number from 1 to {most}.", field=name, code="out_of_range")
    return int(given)


class PopulationView(APIView):
    """The period's production deployments, oldest first, each matched to its change, approvals, test evidence and
    build, a page at a time (`page`, `page_size` up to 500, as every list)."""

    permission_classes = [EvidenceReader]

    @extend_schema(responses=PopulationPageSerializer, parameters=[
        *PERIOD_PARAMETERS,
        OpenApiParameter("page", int, description="From 1; past the last page, no results."),
        OpenApiParameter("page_size", int, description=f"1 to {MAX_PAGE_SIZE}; default {PAGE_SIZE}."),
    ])
    def get(self, request):
        period = _period(request)
        page = _whole_number(request, "page", 1, 1_000_000)
        size = _whole_number(request, "page_size", PAGE_SIZE, MAX_PAGE_SIZE)
        deployments = production_deployments(period)
        records = matched(deployments[(page - 1) * size:page * size], chunk_size=size)
        return Response({"period": period_data(period), "count": deployments.count(), "page": page,
                         "page_size": size, "results": [row_dict(population_row(r)) for r in records]})


class ExceptionsView(APIView):
    """The period's exceptions, each with its reason and the evidence behind it, ordered by record and kind."""

    permission_classes = [EvidenceReader]

    @extend_schema(responses=ExceptionsSerializer, parameters=PERIOD_PARAMETERS)
    def get(self, request):
        period = _period(request)
        found = period_exceptions(period)
        return Response(ExceptionsSerializer({"period": period, "count": len(found), "results": found}).data)


class ControlsView(APIView):
    """The change-management controls tested over the period: passed or failed, with the criteria and the keys
    of the exceptions that failed each."""

    permission_classes = [EvidenceReader]

    @extend_schema(responses=ControlsSerializer, parameters=PERIOD_PARAMETERS)
    def get(self, request):
        period = _period(request)
        return Response(ControlsSerializer({"period": period, "results": control_tests(period)}).data)


class ReconciliationView(APIView):
    """How complete the population is: the counts of each side (allowing gate checks, reported and run deployments,
    approved production changes) and every record with no partner on the other side."""

    permission_classes = [EvidenceReader]

    @extend_schema(responses=ReconciliationSerializer, parameters=PERIOD_PARAMETERS)
    def get(self, request):
        period = _period(request)
        result = reconcile(period)
        return Response(ReconciliationSerializer({"period": period, "counts": result.counts,
                                                  "unpaired": result.unpaired}).data)
