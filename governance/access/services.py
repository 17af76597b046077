"""Access services: issuing, revoking and authenticating API tokens."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.core.secrets import create_named, secret_digest, secret_draw
from governance.models import ApiToken
from governance.roles import Role

TOKEN_PREFIX = "cbt_"  # noqa: S105 (a marker that lets scanners spot leaked tokens, not a secret)
# Seconds between last-used updates for one token, so a busy pipeline does not write on every call.
LAST_USED_RESOLUTION = 60


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def can_manage_token(user, token: ApiToken) -> bool:
    return user.is_active and (token.user_id == user.pk or user.has_perm("governance.change_apitoken"))


def token_owner_refusal(actor: ActingUser, owner) -> Forbidden | None:
    """Why `actor` may not issue a token for `owner`, if not: anyone issues their own; an administrator also
    issues them for service accounts (pipelines), never for another person, who would then act, and approve,
    as that person."""
    if owner.pk == actor.pk:
        return None
    if not actor.has_perm("governance.add_apitoken"):
        return Forbidden("Only an administrator may issue tokens for another account.", field="owner")
    if not owner.groups.filter(name=Role.SERVICE_ACCOUNT).exists():
        return Forbidden(f"{owner.get_username()} is not a service account: people issue their own tokens.",
                         field="owner")
    return None


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
    refusal = token_owner_refusal(actor, owner)
    if refusal is not None:
        raise refusal
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


def api_token_rotate(*, actor: ActingUser, token: ApiToken) -> IssuedToken:
    """A new secret for an active token: a new token with the same owner, name, scope and lifetime, issued and
    the old one revoked in one transaction (the old one keeps its record, renamed as rotated)."""
    with transaction.atomic():
        old = ApiToken.objects.select_for_update().get(pk=token.pk)
        if not can_manage_token(actor, old):
            raise Forbidden("You may only rotate your own tokens.")
        now = timezone.now()
        if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
            raise Conflict(f"The token {old.name!r} is {old.status}: issue a new one instead.", code="token_not_active")
        days = math.ceil((old.expires_at - old.created_at) / timedelta(days=1)) if old.expires_at else None
        services, environments = list(old.services.all()), list(old.environments.all())
        name = old.name
        suffix = f" (rotated, was {old.prefix}…)"
        old.name = name[:(ApiToken._meta.get_field("name").max_length or len(name)) - len(suffix)] + suffix
        old.revoked_at, old.revoked_by = now, actor
        old.save(update_fields=["name", "revoked_at", "revoked_by"])
        issued = api_token_create(actor=actor, owner=old.user, name=name, expires_days=days, services=services,
                                  environments=environments)
        # A scope whose services or environments were all deleted since acts for none: the new token keeps that.
        ApiToken.objects.filter(pk=issued.token.pk).update(services_scoped=old.services_scoped,
                                                           environments_scoped=old.environments_scoped)
        issued.token.services_scoped, issued.token.environments_scoped = old.services_scoped, old.environments_scoped
    return issued


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
