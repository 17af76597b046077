"""The Ed25519 key that signs ledger checkpoints. It lives outside the database: a file or a variable."""

from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from governance.core.ed25519 import key_id, parse_private_key, public_key_pem


@cache
def signing_key() -> Ed25519PrivateKey:
    """The key from AUDIT_SIGNING_KEY (PEM, or base64 of the 32-byte seed) or AUDIT_SIGNING_KEY_FILE (PEM)."""
    raw = settings.AUDIT_SIGNING_KEY
    if not raw and settings.AUDIT_SIGNING_KEY_FILE:
        try:
            raw = Path(settings.AUDIT_SIGNING_KEY_FILE).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE cannot be read: {exc.strerror}") from None
    if not raw:
        raise ImproperlyConfigured("Set AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE to sign audit checkpoints.")
    return parse_private_key(raw)


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def sign(message: bytes) -> str:
    return signing_key().sign(message).hex()


def public_key_document() -> dict[str, str]:
    """What an auditor needs to check checkpoint signatures independently."""
    key = public_key()
    return {
        "algorithm": "Ed25519",
        "key_id": key_id(key),
        "public_key_pem": public_key_pem(key),
        "message_format": (
            "changeboard-audit-checkpoint:v1:{seq}:{head_hash}:{created_at as YYYY-MM-DDTHH:MM:SS.ffffff+00:00}"
        ),
    }
