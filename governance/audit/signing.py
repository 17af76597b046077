"""The Ed25519 key that signs ledger checkpoints. It lives outside the database: a file or a variable."""

import base64
import hashlib
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


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


def parse_private_key(raw: str) -> Ed25519PrivateKey:
    raw = raw.strip()
    try:
        if raw.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(raw.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw, validate=True))
    except ValueError:
        raise ImproperlyConfigured("The audit signing key is not an Ed25519 private key.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("The audit signing key is not an Ed25519 private key.")
    return key


def generate_private_key_pem() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def public_key_pem(key: Ed25519PublicKey | None = None) -> str:
    key = key or public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key_pem(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key: names the key a checkpoint was signed with."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(message: bytes) -> str:
    return signing_key().sign(message).hex()


def signature_valid(key: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


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
