from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def refuse_without_secret_key() -> None:
    """Sessions signed with a per-process key would break across workers and restarts: refuse to serve."""
    if settings.SECRET_KEY_IS_EPHEMERAL and not settings.DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set to serve requests when DEBUG is false")
