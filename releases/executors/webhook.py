"""The webhook executor: starts a job in an external CD system (an Argo CD sync, a Jenkins build, anything with an HTTP
API) and polls it until it ends or the step's time is up.

The start is a POST to `forward_url` (or `backward_url`) whose placeholders are filled in as whole, URL-encoded values,
with the step as JSON and its idempotency key both in the body and as an `Idempotency-Key` header, so a start sent
again after a worker died finds the job the first one started instead of starting a second. The job's id is read from
the answer at `job_id_path`, then `status_url` (with `{job}`) is polled and the job's state read at `state_path`: a
state in `succeeded_states` or `failed_states` ends the step, any other (or null) means it still runs. A dotted path
walks objects by key and lists by index (`items.0.id`). The bearer token is read, when the step runs, from the
environment variable `token_env` names; it never goes to the database, the log or the step's output.
"""

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from releases.executors.base import StepContext, StepResult, not_an_object, unknown_settings
from releases.executors.command import PLACEHOLDER, PLACEHOLDERS
from releases.executors.remote import (
    excerpt,
    http_url_error,
    interval_error,
    scrubbed,
    token_from,
    variable_name_error,
    whole_seconds_error,
)

SETTINGS = ("forward_url", "backward_url", "status_url", "lookup_url", "job_id_path", "state_path",
            "succeeded_states", "failed_states", "poll_interval_seconds", "timeout_seconds", "token_env")
DEFAULT_TIMEOUT = 600
DEFAULT_POLL_INTERVAL = 5.0
CONNECT_SECONDS = 5.0
REQUEST_SECONDS = 30.0
MISSING = object()


class CdSystemError(Exception):
    """The CD system could not be asked, or answered something that is no answer; the message says which."""


def fill(template: str, values: dict[str, str]) -> str:
    """The URL with each placeholder replaced by its value, URL-encoded whole (a `/` or `&` in it stays data)."""
    return PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), template)


def dig(answer: Any, path: str) -> Any:
    """The value at a dotted path in a JSON answer, or MISSING where the path leads nowhere."""
    value = answer
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _template_errors(name: str, value, *, required: bool, known: tuple[str, ...], needs: str = "") -> list[str]:
    errors = http_url_error(name, value, required=required)
    if errors or value is None:
        return errors
    used = set(PLACEHOLDER.findall(value))
    unknown = sorted(used - set(known))
    if unknown:
        return [f"{name} names unknown placeholders: {', '.join(unknown)} (known: {', '.join(known)})."]
    if needs and needs not in used:
        return [f"{name} must hold the placeholder {{{needs}}}."]
    return []


def _path_error(name: str, value) -> list[str]:
    if not isinstance(value, str) or not value or any(not part for part in value.split(".")):
        return [f"{name} is required: a dotted path into the JSON answer, such as status.phase or items.0.id."]
    return []


def _states_error(name: str, value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
        return [f"{name} is required: a list of the job's states (strings), such as [\"Succeeded\"]."]
    return []


def webhook_settings_errors(settings) -> list[str]:
    if not isinstance(settings, dict):
        return not_an_object(SETTINGS)
    errors = unknown_settings(settings, SETTINGS)
    errors += _template_errors("forward_url", settings.get("forward_url"), required=True, known=PLACEHOLDERS)
    errors += _template_errors("backward_url", settings.get("backward_url"), required=True, known=PLACEHOLDERS)
    errors += _template_errors("status_url", settings.get("status_url"), required=True,
                               known=(*PLACEHOLDERS, "job"), needs="job")
    errors += _template_errors("lookup_url", settings.get("lookup_url"), required=False, known=PLACEHOLDERS,
                               needs="key")
    errors += _path_error("job_id_path", settings.get("job_id_path"))
    errors += _path_error("state_path", settings.get("state_path"))
    errors += _states_error("succeeded_states", settings.get("succeeded_states"))
    errors += _states_error("failed_states", settings.get("failed_states"))
    both = set(settings.get("succeeded_states") or []) & set(settings.get("failed_states") or [])
    if isinstance(settings.get("succeeded_states"), list) and isinstance(settings.get("failed_states"), list) and both:
        errors.append(f"succeeded_states and failed_states both hold {', '.join(sorted(map(str, both)))}.")
    errors += interval_error("poll_interval_seconds", settings.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL))
    errors += whole_seconds_error("timeout_seconds", settings.get("timeout_seconds", DEFAULT_TIMEOUT))
    errors += variable_name_error("token_env", settings.get("token_env"), required=False)
    return errors


@dataclass(frozen=True)
class WebhookExecutor:
    """Starts the CD system's job for a wave (forward or backward), follows it to its end, and asks the CD system,
    by the step's idempotency key, whether an interrupted rollout already happened."""

    forward_url: str
    backward_url: str
    status_url: str
    lookup_url: str
    job_id_path: str
    state_path: str
    succeeded_states: frozenset[str]
    failed_states: frozenset[str]
    poll_interval_seconds: float
    timeout_seconds: int
    token_env: str

    @classmethod
    def from_settings(cls, settings: dict) -> "WebhookExecutor":
        return cls(forward_url=settings["forward_url"], backward_url=settings["backward_url"],
                   status_url=settings["status_url"], lookup_url=settings.get("lookup_url") or "",
                   job_id_path=settings["job_id_path"], state_path=settings["state_path"],
                   succeeded_states=frozenset(settings["succeeded_states"]),
                   failed_states=frozenset(settings["failed_states"]),
                   poll_interval_seconds=settings.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL),
                   timeout_seconds=settings.get("timeout_seconds", DEFAULT_TIMEOUT),
                   token_env=settings.get("token_env") or "")

    def forward(self, step: StepContext) -> StepResult:
        return self._run(self.forward_url, step)

    def backward(self, step: StepContext) -> StepResult:
        return self._run(self.backward_url, step)

    def check(self, step: StepContext) -> bool | None:
        """True when the job the key started succeeded; False when there is none, or it failed or still runs (a
        forward step sent again with the same key then finds it); None when the CD system cannot be asked."""
        token, missing = token_from(self.token_env)
        if not self.lookup_url or missing:
            return None
        url = fill(self.lookup_url, _values(step))
        try:
            with self._client(token) as client:
                response = _request(client, "GET", url, seconds=REQUEST_SECONDS)
                if response.status_code == 404:
                    return False
                state = self._state(response, url)
        except CdSystemError:
            return None
        return state in self.succeeded_states

    def _state(self, response: httpx.Response, url: str) -> str | None:
        """The job's state as text (a number or boolean as JSON writes it: 0, true), None while it has none."""
        state = dig(_answer(response, url), self.state_path)
        if state is MISSING or isinstance(state, dict | list):
            raise CdSystemError(f"GET {url} answered no state at {self.state_path}: {excerpt(response.text)}")
        return None if state is None else state if isinstance(state, str) else json.dumps(state)

    def _client(self, token: str) -> httpx.Client:
        headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        # Redirects are not followed: the token goes to the host the plan names, nowhere else.
        return httpx.Client(headers=headers, follow_redirects=False,
                            timeout=httpx.Timeout(REQUEST_SECONDS, connect=CONNECT_SECONDS))

    def _run(self, start_url: str, step: StepContext) -> StepResult:
        token, missing = token_from(self.token_env)
        if missing:
            return StepResult(False, missing)
        lines: list[str] = []
        try:
            with self._client(token) as client:
                ok = self._start_and_follow(client, fill(start_url, _values(step)), step, lines)
        except CdSystemError as exc:
            lines.append(str(exc))
            ok = False
        return StepResult(ok, scrubbed("\n".join(lines), token))

    def _start_and_follow(self, client: httpx.Client, start_url: str, step: StepContext, lines: list[str]) -> bool:
        deadline = time.monotonic() + self.timeout_seconds
        body = {"deployment": step.deployment, "digest": step.artifact_digest,
                "previous_digest": step.previous_digest, "environment": step.environment, "wave": step.wave,
                "targets": list(step.targets), "idempotency_key": step.idempotency_key}
        response = _request(client, "POST", start_url, seconds=_left(deadline), json=body,
                            headers={"Idempotency-Key": step.idempotency_key})
        job = dig(_answer(response, start_url), self.job_id_path)
        if job is MISSING or job is None or job == "" or isinstance(job, dict | list):
            raise CdSystemError(f"The start answer has no job id at {self.job_id_path}: {excerpt(response.text)}")
        job = str(job)
        lines.append(f"Started job {job} (POST {start_url}, Idempotency-Key {step.idempotency_key}).")
        status_url = fill(self.status_url, _values(step) | {"job": job})
        last: str | object | None = MISSING
        while True:
            response = _request(client, "GET", status_url, seconds=_left(deadline))
            state = self._state(response, status_url)
            if state != last:
                lines.append(f"Job {job}: {state if state is not None else 'no state yet'}.")
                last = state
            if state in self.succeeded_states:
                return True
            if state in self.failed_states:
                lines.append(f"Job {job} failed: {excerpt(response.text)}")
                return False
            if time.monotonic() + self.poll_interval_seconds >= deadline:
                lines.append(f"Job {job} did not end within {self.timeout_seconds} s (last state: {state}); it may "
                             f"still run in the CD system.")
                return False
            time.sleep(self.poll_interval_seconds)


def _values(step: StepContext) -> dict[str, str]:
    return {"deployment": step.deployment, "digest": step.artifact_digest, "previous_digest": step.previous_digest,
            "environment": step.environment, "wave": step.wave, "targets": ",".join(step.targets),
            "key": step.idempotency_key}


def _left(deadline: float) -> float:
    """A request's own timeout: never past the step's deadline, never below a second."""
    return max(1.0, min(REQUEST_SECONDS, deadline - time.monotonic()))


def _request(client: httpx.Client, method: str, url: str, *, seconds: float, **kwargs) -> httpx.Response:
    if urlsplit(url).scheme not in ("http", "https"):
        raise CdSystemError(f"{method} {url}: only http:// and https:// URLs are called.")
    try:
        response = client.request(method, url, timeout=httpx.Timeout(seconds, connect=min(seconds, CONNECT_SECONDS)),
                                  **kwargs)
    except httpx.TimeoutException:
        raise CdSystemError(f"{method} {url}: no answer within {seconds:g} s.") from None
    except httpx.HTTPError as exc:
        raise CdSystemError(f"{method} {url}: {type(exc).__name__}: {excerpt(str(exc))}") from None
    return response


def _answer(response: httpx.Response, url: str) -> Any:
    """The JSON of a successful answer; anything else (a 5xx, a redirect, HTML) is the CD system's error."""
    if not response.is_success:
        raise CdSystemError(f"{response.request.method} {url} answered {response.status_code}: "
                            f"{excerpt(response.text)}")
    try:
        return response.json()
    except ValueError:
        raise CdSystemError(f"{response.request.method} {url} answered {response.status_code} with a body that is "
                            f"not JSON: {excerpt(response.text)}") from None
