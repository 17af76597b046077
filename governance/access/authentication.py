from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from governance.access.services import api_token_authenticate
from governance.audit.context import actor_for
from governance.audit.ledger import audit_record
from governance.models import ApiToken


def request_token(request) -> ApiToken | None:
    """The API token a request authenticated with; None for a browser session."""
    return request.auth if isinstance(request.auth, ApiToken) else None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` for people and service accounts."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
        token = api_token_authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("The token is unknown, expired or revoked.")
        view = request.parser_context.get("view") if request.parser_context else None
        if request.method not in permissions.SAFE_METHODS and not getattr(view, "write_records_token", False):
            audit_record("token_used", obj=token, actor=actor_for(request, token.user, token),
                         context={"method": request.method, "path": request.path})
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="changeboard"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
