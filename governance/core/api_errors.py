"""One error shape for the whole API: {"errors": [{"code", "message", "field"}]}, from DRF's views through the
exception handler and from everything else under /api/ (no route, a body too large, a server error) through
the handlers the root URLconf names. It records nothing: the audit's handler wraps this one to record refusals."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from governance.core.errors import DomainError
from governance.core.parsers import BodyTooLarge


def flatten_errors(detail: Any, field: str | None = None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            name = None if key in ("non_field_errors", "__all__", "detail") else str(key)
            path: str | None
            if isinstance(key, int):  # an item of a list (DRF keys a list's errors by index)
                path = f"{field or ''}[{key}]"
            else:
                path = f"{field}.{name}" if field and name else (name or field)
            errors.extend(flatten_errors(value, path))
        return errors
    if isinstance(detail, list):
        errors = []
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                errors.extend(flatten_errors(value, f"{field}[{index}]" if field else f"[{index}]"))
            else:
                errors.extend(flatten_errors(value, field))
        return errors
    code = getattr(detail, "code", None) or "invalid"
    return [{"code": str(code), "message": str(detail), "field": field}]


def error_response(errors: list[dict[str, Any]], status_code: int) -> Response:
    return Response({"errors": errors}, status=status_code)


class BadRequest(exceptions.APIException):
    """A request Django itself refuses as suspicious (too many fields, a malformed multipart body)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"


def api_exception(exc: Exception) -> Exception:
    """Django's own refusals as the DRF exceptions that answer them; any other exception as it is."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return exceptions.ValidationError(detail)
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, SuspiciousOperation):
        return BodyTooLarge() if isinstance(exc, RequestDataTooBig) else BadRequest(str(exc))
    return exc


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        set_rollback()
        return error_response(exc.as_errors(), exc.status)
    if isinstance(exc, ProtectedError | RestrictedError):
        # Subclasses of IntegrityError, but no race: other rows still point at this one.
        set_rollback()
        message = "Other records still refer to this one; remove or reassign them first."
        return error_response([{"code": "protected", "message": message, "field": None}], 409)
    if isinstance(exc, IntegrityError):
        # A racing request won a unique constraint that validation had checked: a conflict, not a crash.
        set_rollback()
        message = "The request conflicts with a record written at the same time; retry it."
        return error_response([{"code": "conflict", "message": message, "field": None}], 409)
    exc = api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)  # the only kind DRF answers, once api_exception has run
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
    else:
        errors = [{"code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error",
                   "message": str(exc.detail), "field": None}]
    response.data = {"errors": errors}
    return response


# Outside DRF's views (no route matched, Django refused the request, a view crashed) the root URLconf's handlers
# answer: in the API's shape under /api/, as Django's own pages elsewhere.


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def api_refusal(status_code: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"errors": [{"code": code, "message": message, "field": field}]}, status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return api_refusal(413, "too_large", str(BodyTooLarge().detail))
    return api_refusal(400, "bad_request", "The request is malformed.")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.permission_denied(request, exception)
    return api_refusal(403, "permission_denied", str(exceptions.PermissionDenied.default_detail))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.page_not_found(request, exception)
    return api_refusal(404, "not_found", "No API endpoint has this address; the schema at /api/schema/ lists them.")


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api(request):
        return defaults.server_error(request)
    return api_refusal(500, "server_error", "The server failed to answer; the error is logged.")
