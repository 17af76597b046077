"""Paging: the API's page-number pagination, and one page of a filtered list on the pages."""

from django.core.paginator import Page, Paginator
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def page_of(request, items, per_page: int, *, drop: tuple[str, ...] = ()) -> tuple[Page, str]:
    """The page of `items` the request asks for, and its other parameters (less `drop`) as a query string, so
    the page links keep the filters."""
    page = Paginator(items, per_page).get_page(request.GET.get("page"))
    query = request.GET.copy()
    for name in ("page", *drop):
        query.pop(name, None)
    return page, query.urlencode()
