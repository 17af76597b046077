from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security, deploy=True)
def secret_key_configured(app_configs, **kwargs):
    if settings.SECRET_KEY_IS_EPHEMERAL:
        return [Error("SECRET_KEY is not set: sessions would not survive a restart or another worker.",
                      id="changeboard.E002")]
    return []


@register(Tags.security, deploy=True)
def audit_signing_key_configured(app_configs, **kwargs):
    """Checkpoints of the audit ledger must be signed in production."""
    from governance.audit import signing

    try:
        signing.signing_key()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="changeboard.E001",
                      hint="Generate one with: python manage.py audit_keygen > audit-signing-key.pem")]
    return []
