"""Refusals made before any view runs, for every page and endpoint alike."""

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from governance.core import api_errors
from governance.core.inputs import NUL


class RefuseNulMiddleware:
    """A NUL character in the path, the query string, a header or a cookie is refused with a 400 before any view
    or query reads it: every value there is looked up (a number, a name, a filter, a session) or recorded (the
    ledger's client address) and PostgreSQL cannot hold a NUL in text, so it would otherwise fail as a server
    error. Bodies are checked by the API's parser and fields."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found, field = _nul_in(request)
        if found:
            if api_errors.is_api(request):
                return api_errors.api_refusal(400, NUL.code, NUL.message, field)
            return api_errors.bad_request(request, ValueError(NUL.message))
        return self.get_response(request)


def _nul_in(request: HttpRequest) -> tuple[bool, str | None]:
    """Whether the path or the query string holds a NUL, and the parameter that does (None outside any)."""
    if "\x00" in request.path_info:
        try:
            kwargs = resolve(request.path_info).kwargs
        except Resolver404:
            return True, None
        name = next((name for name, value in kwargs.items() if "\x00" in str(value)), None)
        return True, "id" if name == "pk" else name  # a record's key is documented as its id
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return True, name.replace("\x00", "") or None
    # A cookie's quoted octal escapes (\000) decode to a NUL that its header never held.
    for name, value in [*request.COOKIES.items(), *request.headers.items()]:
        if "\x00" in name or "\x00" in value:
            return True, name.replace("\x00", "") or None
    return False, None
