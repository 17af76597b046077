"""The auditor reads everything and changes nothing: one rule at the door, not one per view. An auditor's request with
a writing method is refused before any view reads its input, unless its address is one of the few writes that are
the auditor's own (listed here with why); a view that forgot its own check, or validates before it checks, cannot
let an auditor write. Signing in by session or by API token alike: a token's owner is looked up, not authenticated,
so the look-up writes nothing (no last use, no ledger event) and the API's own authentication still runs after."""

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from governance.access.services import TOKEN_PREFIX
from governance.audit.context import actor_for
from governance.audit.ledger import audit_record
from governance.core.api_errors import permission_denied
from governance.core.secrets import secret_digest
from governance.models import ApiToken
from governance.roles import Role

WRITING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# The writes an auditor makes, by URL name, and why each is the auditor's own. Nothing else.
AUDITOR_WRITES = {
    "login": "signing in: the auditor's own session",
    "logout": "signing out: the auditor's own session",
    "admin:login": "signing in to the admin: the auditor's own session",
    "admin:logout": "signing out of the admin: the auditor's own session",
    "admin:password_change": "the auditor's own password",
    "token_list": "issuing the auditor's own API token, for a GRC tool reading the API",
    "token_revoke": "revoking one of the auditor's own tokens (another's is not found)",
    "token_rotate": "rotating one of the auditor's own tokens (another's is not found)",
    "calendar:feeds": "the auditor's own calendar subscription, which reads the calendar",
    "calendar:feed_revoke": "revoking the auditor's own subscription (another's is not found)",
    "calendar-feed-list": "as calendar:feeds, through the API",
    "calendar-feed-revoke": "as calendar:feed_revoke, through the API",
    "audit-checkpoint-list": "signing the ledger's head as it stands: evidence of what was read, changing none of it",
    "evidence:exception_notes": "an auditor's note on an exception, kept apart: the one record an auditor writes",
    "audit-note-list": "as evidence:exception_notes, through the API",
    "evidence:samples": "drawing a sample by a recorded seed: the auditor's own working paper",
    "evidence:bundles": "requesting an evidence bundle: an export, itself recorded in the ledger",
    "audit-bundle-list": "as evidence:bundles, through the API",
}


def writing_auditor(request: HttpRequest) -> tuple[User | None, ApiToken | None]:
    """The auditor a request comes from, by its session or by the usable API token it carries (looked up only: the
    API authenticates it itself), in one query; (None, None) when it is not an auditor's."""
    if request.user.is_authenticated:
        return (request.user, None) if request.user.groups.filter(name=Role.AUDITOR).exists() else (None, None)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(TOKEN_PREFIX):
        return None, None
    token = (ApiToken.objects.usable().select_related("user")
             .filter(digest=secret_digest(secret), user__is_active=True, user__groups__name=Role.AUDITOR).first())
    return (token.user, token) if token is not None else (None, None)


class AuditorReadOnlyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.method not in WRITING_METHODS or request.resolver_match is None:
            return None
        if request.resolver_match.view_name in AUDITOR_WRITES:
            return None
        owner, token = writing_auditor(request)
        if owner is None:
            return None
        reason = "An auditor reads everything and changes nothing."
        audit_record("permission_denied", actor=actor_for(request, owner, token),
                     context={"method": request.method, "path": request.path, "reason": reason})
        return permission_denied(request, PermissionDenied(reason))
