"""What the executors that call a remote API share: settings checks in words, and the bearer token, which is read
from the worker's environment when a step runs (the plan names the variable, never holds the secret) and is kept out
of everything a step says."""

import os
import re
from urllib.parse import urlsplit

from releases.models import LONGEST_STEP_SECONDS

ENVIRONMENT_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXCERPT = 500


def whole_seconds_error(name: str, value, *, most: int = LONGEST_STEP_SECONDS) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        return [f"{name} must be a whole number of seconds from 1 to {most}."]
    return []


def interval_error(name: str, value, *, least: float = 0.1, most: float = 300) -> list[str]:
    if not isinstance(value, int | float) or isinstance(value, bool) or not least <= value <= most:
        return [f"{name} must be a number of seconds from {least:g} to {most:g}."]
    return []


def variable_name_error(name: str, value, *, required: bool) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, str) or not ENVIRONMENT_VARIABLE.fullmatch(value):
        return [f"{name} must name an environment variable of the worker (letters, digits, _), which holds the "
                f"token; the token itself is never a setting."]
    return []


def http_url_error(name: str, value, *, required: bool = True) -> list[str]:
    """An http(s) URL, whose host no placeholder can change: a wave's name never redirects the token elsewhere."""
    if value is None and not required:
        return []
    if not isinstance(value, str) or not value.strip():
        return [f"{name} is required: an http:// or https:// URL."]
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{name} must be an http:// or https:// URL with a host."]
    if "{" in parts.netloc or "}" in parts.netloc:
        return [f"{name} may have placeholders in its path and query only, not in its host."]
    if parts.username or parts.password:
        return [f"{name} must not hold credentials; name the token's environment variable instead."]
    return []


def token_from(variable: str | None) -> tuple[str, str]:
    """The token and, when it cannot be had, why (naming the variable, never a value)."""
    if not variable:
        return "", ""
    token = os.environ.get(variable, "")
    if not token:
        return "", f"The environment variable {variable}, which should hold the token, is not set on the worker."
    return token, ""


def scrubbed(text: str, token: str) -> str:
    """`text` without the token, whatever echoed it back."""
    return text.replace(token, "[token]") if token else text


def excerpt(text: str, limit: int = EXCERPT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"
