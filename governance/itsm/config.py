"""The ITSM connectors of an installation: configuration, never the database. The file ITSM_CONFIG_FILE names holds a
JSON list of connectors; it is read once, when first used (settings.ITSM_CONNECTORS), and any mistake in it stops
there with the connector and the field at fault. Credentials are the names of environment variables, read when a
connector is used: the file never holds a secret."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from governance.models import ChangeStatus
from releases.executors.remote import http_url_error, variable_name_error

KINDS = ("servicenow", "jira", "webhook")
COMMON_KEYS = ("name", "kind", "url", "teams", "credentials")
# The options each kind takes besides the common keys.
KIND_OPTIONS = {"servicenow": (), "jira": ("service_desk_id", "request_type_id", "transitions"), "webhook": ()}
# The credentials each kind accepts: one of these sets of environment variable names.
CREDENTIAL_SETS = {
    "servicenow": ({"username_env", "password_env"}, {"token_env"}),
    "jira": ({"username_env", "password_env"}, {"token_env"}),
    "webhook": ({"secret_env"},),
}
ALL_TEAMS = "*"
# OutboxMessage.connector and ItsmRecord.connector hold the name: 50 characters.
CONNECTOR_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
TEAM_SLUG = re.compile(r"[-a-zA-Z0-9_]+")


@dataclass(frozen=True)
class ConnectorConfig:
    """One connector: where its tool is, which teams' changes go there, how it is reached, and the names (never the
    values) of the environment variables holding its credentials."""

    name: str
    kind: str
    url: str
    teams: tuple[str, ...]
    options: dict = field(default_factory=dict)
    credentials: dict = field(default_factory=dict)

    def serves(self, team_slug: str) -> bool:
        return ALL_TEAMS in self.teams or team_slug in self.teams


def connectors_load(path: str) -> list[ConnectorConfig]:
    """The connectors of the file at `path`; none when no file is named."""
    if not path:
        return []
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImproperlyConfigured(f"ITSM_CONFIG_FILE={path}: cannot be read ({exc.strerror}).") from None
    except ValueError as exc:
        raise ImproperlyConfigured(f"ITSM_CONFIG_FILE={path}: not JSON ({exc}).") from None
    try:
        return connectors_from(entries)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"ITSM_CONFIG_FILE={path}: {exc}") from None


def connectors_from(entries) -> list[ConnectorConfig]:
    """The connectors a parsed configuration describes, every mistake in it named at once."""
    if not isinstance(entries, list):
        raise ImproperlyConfigured("the configuration is a JSON list of connectors.")
    errors: list[str] = []
    configs: list[ConnectorConfig] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        label = _label(entry, position)
        problems = _entry_errors(entry)
        if not problems and entry["name"] in seen:
            problems = ["name: another connector has this name."]
        errors += [f"{label}: {problem}" for problem in problems]
        if not problems:
            seen.add(entry["name"])
            configs.append(_config(entry))
    if errors:
        raise ImproperlyConfigured(" ".join(errors))
    return configs


def _label(entry, position: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"connector {name!r}" if isinstance(name, str) and name else f"connector #{position + 1}"


def _config(entry: dict) -> ConnectorConfig:
    options = {key: entry[key] for key in KIND_OPTIONS[entry["kind"]] if key in entry}
    return ConnectorConfig(name=entry["name"], kind=entry["kind"], url=entry["url"].rstrip("/"),
                           teams=tuple(entry["teams"]), options=options, credentials=dict(entry["credentials"]))


def _entry_errors(entry) -> list[str]:
    if not isinstance(entry, dict):
        return ["each connector is an object with " + ", ".join(COMMON_KEYS) + "."]
    name, kind = entry.get("name"), entry.get("kind")
    errors = []
    if not isinstance(name, str) or not CONNECTOR_NAME.fullmatch(name):
        errors.append("name is required: lower-case letters, digits, - and _, at most 50 characters.")
    if kind not in KINDS:
        return [*errors, f"kind must be one of {', '.join(KINDS)}."]
    unknown = sorted(set(entry) - set(COMMON_KEYS) - set(KIND_OPTIONS[kind]))
    if unknown:
        errors.append(f"unknown keys for a {kind} connector: {', '.join(unknown)}.")
    errors += [f"url: {error}" for error in http_url_error("url", entry.get("url"))]
    errors += _teams_errors(entry.get("teams"))
    errors += _credentials_errors(kind, entry.get("credentials"))
    if kind == "jira":
        errors += _jira_errors(entry)
    return errors


def _teams_errors(teams) -> list[str]:
    if (not isinstance(teams, list) or not teams
            or not all(isinstance(t, str) and (t == ALL_TEAMS or TEAM_SLUG.fullmatch(t)) for t in teams)):
        return ['teams is required: a list of team slugs, or ["*"] for every team.']
    return []


def _credentials_errors(kind: str, credentials) -> list[str]:
    accepted = " or ".join("{" + ", ".join(sorted(names)) + "}" for names in CREDENTIAL_SETS[kind])
    if not isinstance(credentials, dict) or set(credentials) not in CREDENTIAL_SETS[kind]:
        return [f"credentials must be {accepted}: names of environment variables, never the secrets."]
    return [f"credentials.{error}" for key in sorted(credentials)
            for error in variable_name_error(key, credentials[key], required=True)]


def _jira_errors(entry: dict) -> list[str]:
    errors = []
    for key in ("service_desk_id", "request_type_id"):
        if not _identifier(entry.get(key)):
            errors.append(f"{key} is required: the id Jira Service Management gives it (digits).")
    transitions = entry.get("transitions", {})
    if not isinstance(transitions, dict) or not all(
            isinstance(status, str) and _identifier(transition) for status, transition in transitions.items()):
        errors.append('transitions must map a change status to the id of the Jira transition into it, such as '
                      '{"approved": "21"}.')
    elif unknown := sorted(set(transitions) - set(ChangeStatus.values)):
        # A misspelt status would never move the request, silently.
        errors.append(f"transitions name unknown change statuses: {', '.join(unknown)} (the statuses: "
                      f"{', '.join(ChangeStatus.values)}).")
    return errors


def _identifier(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value > 0) or (
        isinstance(value, str) and value.isdigit())
