from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.utils.cache import patch_cache_control


def refuse_without_secret_key() -> None:
    """Sessions signed with a per-process key would break across workers and restarts: refuse to serve."""
    if settings.SECRET_KEY_IS_EPHEMERAL and not settings.DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set to serve requests when DEBUG is false")


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask every site for /favicon.ico, whatever its pages link: send them to the icon the pages link."""
    response = HttpResponseRedirect(static("changeboard/favicon.svg"))
    patch_cache_control(response, max_age=86400, public=True)
    return response
