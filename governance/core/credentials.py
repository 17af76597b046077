"""What a credential may act for, as plain data: the services and environments an API token is scoped to. The
areas that check a scope (releases, the gate) receive this, never the token model."""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from governance.core.errors import Forbidden


@dataclass(frozen=True)
class CredentialScope:
    """`services` and `environments` hold primary keys; None means any (an unscoped token)."""

    name: str
    services: frozenset[int] | None = None
    environments: frozenset[int] | None = None


@runtime_checkable
class ScopedCredential(Protocol):
    def credential_scope(self) -> CredentialScope: ...


def request_scope(request) -> CredentialScope | None:
    """The scope of the credential a request authenticated with; None for a browser session."""
    return request.auth.credential_scope() if isinstance(request.auth, ScopedCredential) else None


def require_scope(scope: CredentialScope | None, *, service=None, environment=None) -> None:
    """Refuse a credential scoped elsewhere (people's sessions, with no scope, act for any). `service` and
    `environment` are records with a `pk` and a `name`."""
    if scope is None:
        return
    if service is not None and scope.services is not None and service.pk not in scope.services:
        raise Forbidden(f"The token {scope.name!r} is not scoped to {service.name}.", field="service",
                        code="token_out_of_scope")
    if environment is not None and scope.environments is not None and environment.pk not in scope.environments:
        raise Forbidden(f"The token {scope.name!r} is not scoped to {environment.name}.", field="environment",
                        code="token_out_of_scope")
