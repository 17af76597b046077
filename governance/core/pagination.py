"""Paging: the API's page-number pagination, and one page of a filtered list on the pages."""

import re

from django.core.paginator import Page, Paginator
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int | None:
        """The size asked for, else the default; one out of range is refused, not quietly clamped to another."""
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,6}", given) or not 1 <= int(given) <= self.max_page_size:
            raise serializers.ValidationError({self.page_size_query_param: [
                f"page_size is a whole number from 1 to {self.max_page_size}."]}, code="out_of_range")
        return int(given)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


def page_of(request, items, per_page: int, *, drop: tuple[str, ...] = ()) -> tuple[Page, str]:
    """The page of `items` the request asks for, and its other parameters (less `drop`) as a query string, so
    the page links keep the filters."""
    page = Paginator(items, per_page).get_page(request.GET.get("page"))
    query = request.GET.copy()
    for name in ("page", *drop):
        query.pop(name, None)
    return page, query.urlencode()
