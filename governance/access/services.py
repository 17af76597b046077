"""Access services: issuing, revoking and authenticating API tokens."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.core.actors import ActingUser
from governance.core.errors import Forbidden, InvalidInput
from governance.core.secrets import create_named, secret_digest, secret_draw
from governance.models import ApiToken

TOKEN_PREFIX = "cbt_"  # noqa: S105 (a marker that lets scanners spot leaked tokens, not a secret)
# Seconds between last-used updates for one token, so a busy pipeline does not write on every call.
LAST_USED_RESOLUTION = 60


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def can_manage_token(user, token: ApiToken) -> bool:
    return user.is_active and (token.user_id == user.pk or user.has_perm("governance.change_apitoken"))


def api_token_create(*, actor: ActingUser, owner, name: str, expires_days: int | None = None,
                     services: Sequence[ConfigurationItem] = (), environments: Sequence[Environment] = (),
                     secret: str | None = None) -> IssuedToken:
    """A new token; `services` and `environments` scope it (a pipeline's token names what it deploys). The
    secret is drawn here, unless given (the local demo's published one)."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A token needs a name.", field="name")
    if expires_days is not None and expires_days < 1:
        raise InvalidInput("Expiry must be at least one day.", field="expires_days")
    if owner.pk != actor.pk and not actor.has_perm("governance.add_apitoken"):
        raise Forbidden("Only an administrator may issue tokens for another account.", field="owner")
    if ApiToken.objects.filter(user=owner, name=name).exists():
        raise InvalidInput(f"{owner.username} already has a token named {name!r}.", field="name")
    if secret is not None and (not secret.startswith(TOKEN_PREFIX) or len(secret) < len(TOKEN_PREFIX) + 32):
        raise InvalidInput(f"A token starts with {TOKEN_PREFIX} and has at least 32 characters after it.",
                           field="secret")
    drawn = secret_draw(TOKEN_PREFIX, secret)
    now = timezone.now()

    def create() -> ApiToken:
        token = ApiToken.objects.create(
            user=owner,
            name=name,
            prefix=drawn.prefix,
            digest=drawn.digest,
            created_at=now,
            created_by=actor,
            expires_at=now + timedelta(days=expires_days) if expires_days else None,
            services_scoped=bool(services),
            environments_scoped=bool(environments),
        )
        token.services.set(services)
        token.environments.set(environments)
        return token

    token = create_named(create, taken=f"{owner.username} already has a token named {name!r}.")
    return IssuedToken(token=token, secret=drawn.secret)


def api_token_revoke(*, actor: ActingUser, token: ApiToken) -> ApiToken:
    if not can_manage_token(actor, token):
        raise Forbidden("You may only revoke your own tokens.")
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.revoked_by = actor
            token.save(update_fields=["revoked_at", "revoked_by"])
    return token


def api_token_authenticate(secret: str) -> ApiToken | None:
    """The usable token for this secret, or None; records when it was last used."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    now = timezone.now()
    token = (
        ApiToken.objects.usable(now)
        .select_related("user")
        .filter(digest=secret_digest(secret), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_scope_set(*, actor: ActingUser, token: ApiToken, services, environments) -> None:
    """Scope an issued token to these services and environments; none of either means any of it."""
    if not can_manage_token(actor, token):
        raise Forbidden("You may only change the scope of your own tokens.")
    with transaction.atomic():
        token.services.set(services)
        token.environments.set(environments)
        token.services_scoped, token.environments_scoped = bool(services), bool(environments)
        token.save(update_fields=["services_scoped", "environments_scoped"])
