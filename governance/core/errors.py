"""Domain errors raised by services; the API handler and the views turn them into responses."""


class DomainError(Exception):
    """A rule refused the operation; `code` is stable for clients, `field` names the input at fault."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 details: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        self.details = details

    def as_errors(self) -> list[dict]:
        """Every error carried, each as {"code", "message", "field"}."""
        return self.details or [{"code": self.code, "message": self.message, "field": self.field}]


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class Forbidden(DomainError):
    status = 403
    code = "permission_denied"


class Conflict(DomainError):
    status = 409
    code = "conflict"


def refuse_if_forbidden(exc: DomainError) -> None:
    """For pages: a service's refusal for want of permission is a 403 page, like any other permission check."""
    from django.core.exceptions import PermissionDenied

    if exc.status == 403:
        raise PermissionDenied(exc.message)
