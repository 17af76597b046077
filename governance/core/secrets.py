"""Secrets shown once (API tokens, calendar feed addresses): drawn here, shown to their owner on the response
that issues them, and kept only as a digest and a prefix to recognise them by."""

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.db import IntegrityError, transaction

from governance.core.errors import InvalidInput

T = TypeVar("T")
PREFIX_CHARACTERS = 6  # after the marker: enough to tell one's secrets apart, far too few to guess one


@dataclass(frozen=True)
class DrawnSecret:
    secret: str
    prefix: str
    digest: str


def secret_digest(secret: str) -> str:
    # The secret holds 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_draw(marker: str, secret: str | None = None) -> DrawnSecret:
    """A new secret starting with `marker` (which lets scanners spot a leaked one), unless one is given."""
    secret = secret or marker + secrets.token_urlsafe(32)
    return DrawnSecret(secret=secret, prefix=secret[:len(marker) + PREFIX_CHARACTERS], digest=secret_digest(secret))


def create_named(create: Callable[[], T], *, taken: str) -> T:
    """Create the record holding a secret; a name its owner has taken is refused on the name. The caller checked
    the name already: this catches the same name created at the same moment (a double submit)."""
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:
        raise InvalidInput(taken, field="name") from None
