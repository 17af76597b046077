"""Each request's audit context: its id, its acting identity, and the ledger's record of a page's refusal."""

import uuid

import structlog
from django.core.exceptions import PermissionDenied

from governance.audit.context import REQUEST_ID, acting_as
from governance.audit.ledger import audit_record


class AuditContextMiddleware:
    """Gives each request an id (kept from a sane X-Request-ID) and makes its user the acting identity."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        with acting_as(request):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, PermissionDenied):
            audit_record("permission_denied", context={"method": request.method, "path": request.path,
                                                       "reason": str(exception)})
        return None
