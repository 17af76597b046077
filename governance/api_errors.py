"""One error shape for the whole API: {"errors": [{"code", "message", "field"}]}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from governance.audit.ledger import audit_record
from governance.errors import DomainError, Forbidden


def flatten_errors(detail: Any, field: str | None = None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            name = None if key in ("non_field_errors", "__all__", "detail") else str(key)
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


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        set_rollback()
        _record_refusal(exc, context)
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
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    _record_refusal(exc, context)
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
    else:
        errors = [{"code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error",
                   "message": str(exc.detail), "field": None}]
    response.data = {"errors": errors}
    return response


def _record_refusal(exc: Exception, context: dict) -> None:
    """Permission denials and failed authentications go to the audit ledger."""
    if isinstance(exc, exceptions.PermissionDenied | Forbidden):
        action = "permission_denied"
    elif isinstance(exc, exceptions.AuthenticationFailed):
        action = "authentication_failed"
    else:
        return
    request = context.get("request")
    detail = getattr(exc, "message", None) or str(getattr(exc, "detail", exc))
    audit_record(action, context={"method": getattr(request, "method", ""), "path": getattr(request, "path", ""),
                                  "reason": detail[:500]})
