"""The API's exception handler (REST_FRAMEWORK's EXCEPTION_HANDLER): core's error shape, and the ledger's record of
every permission denial and failed authentication."""

from rest_framework import exceptions
from rest_framework.response import Response

from governance.audit.ledger import audit_record
from governance.core import api_errors
from governance.core.errors import Forbidden


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = api_errors.exception_handler(exc, context)
    if response is not None:
        _record_refusal(api_errors.api_exception(exc), context)
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
