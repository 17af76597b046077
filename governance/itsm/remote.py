"""What every connector's client shares: the result of a delivery and the rule that sorts an answer into done, try
again (when) or give up; the HTTP client with its timeouts, one per connector in a worker process, so deliveries
reuse its connections; credentials read from the environment when used and kept out of every word a delivery says."""

import base64
import email.utils
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from governance.itsm.config import ConnectorConfig
from governance.models import ItsmRecord, OutboxMessage
from releases.executors.remote import excerpt
from releases.health import tls_verification

CONNECT_SECONDS = 5.0
REQUEST_SECONDS = 20.0
# Answers worth another try: the remote is overloaded or briefly unable (Retry-After may say when).
BUSY = (429, 503)


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery went. `retry` says whether sending it again may succeed, `retry_after` (seconds) when the
    remote asked to wait; `remote_id` and `remote_number` name the remote record (empty when there is none);
    `detail` says what happened in words, never with a credential."""

    ok: bool
    retry: bool
    retry_after: float | None = None
    remote_id: str = ""
    remote_number: str = ""
    detail: str = ""


class RemoteRefused(Exception):
    """A call that did not succeed, already sorted into a DeliveryResult; `status` is the remote's answer, None when
    there was none."""

    def __init__(self, result: DeliveryResult, status: int | None = None):
        super().__init__(result.detail)
        self.result, self.status = result, status


class MissingCredential(Exception):
    """An environment variable the connector names is not set on this worker."""


def environment_secret(variable: str) -> str:
    """The value of the environment variable `variable`, else the content of the secrets file `<variable>_FILE`
    names (as Docker and Kubernetes mount secrets), without its final line break; "" when neither gives one."""
    value = os.environ.get(variable, "")
    path = os.environ.get(f"{variable}_FILE", "")
    if value or not path:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return ""


def credential(config: ConnectorConfig, key: str) -> str:
    variable = config.credentials[key]
    value = environment_secret(variable)
    if not value:
        raise MissingCredential(f"The environment variable {variable} ({key[:-4]} of connector {config.name}) is not "
                                f"set on this worker, nor does {variable}_FILE name a readable file holding it.")
    return value


def secrets_of(config: ConnectorConfig) -> list[str]:
    """The secret values set for the connector, as they could be echoed back (the basic header's encoding too), to
    take out of any text. A user name is no secret, and redacting one would garble the words around it."""
    env = {key: environment_secret(variable) for key, variable in config.credentials.items()}
    values = [env[key] for key in ("password_env", "token_env", "secret_env") if env.get(key)]
    if env.get("username_env") and env.get("password_env"):
        values.append(base64.b64encode(f"{env['username_env']}:{env['password_env']}".encode()).decode())
    return values


def redacted(text: str, config: ConnectorConfig) -> str:
    for secret in sorted(secrets_of(config), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


def http_client(config: ConnectorConfig) -> httpx.Client:
    """A client authenticated as the connector's credentials say. Redirects are not followed: the credentials go to
    the configured host, nowhere else."""
    auth: httpx.Auth | None = None
    headers = {"Accept": "application/json"}
    if "token_env" in config.credentials:
        headers["Authorization"] = f"Bearer {credential(config, 'token_env')}"
    elif "username_env" in config.credentials:
        auth = httpx.BasicAuth(credential(config, "username_env"), credential(config, "password_env"))
    return httpx.Client(headers=headers, auth=auth, follow_redirects=False, trust_env=False,
                        timeout=httpx.Timeout(REQUEST_SECONDS, connect=CONNECT_SECONDS), verify=tls_verification())


# This process's client for each connector (by name), with what it was made from.
_clients: dict[str, tuple[tuple, httpx.Client]] = {}


def connector_http_client(config: ConnectorConfig) -> httpx.Client:
    """This process's client for the connector, kept between deliveries so they reuse its connections to a remote
    that keeps them alive, rather than a new client and connection each. Made again in a forked process, or when the
    connector's URL or credentials changed; the one it replaces is closed."""
    made_from = (os.getpid(), config.url,
                 tuple(sorted((variable, environment_secret(variable)) for variable in config.credentials.values())))
    kept = _clients.get(config.name)
    if kept and kept[0] == made_from:
        return kept[1]
    client = http_client(config)
    if kept and kept[0][0] == os.getpid():
        kept[1].close()  # one inherited from the parent process is the parent's to close
    _clients[config.name] = (made_from, client)
    return client


def delivered(config: ConnectorConfig, attempt: Callable[[httpx.Client], DeliveryResult]) -> DeliveryResult:
    """One delivery on this process's client for the connector: a refusal by the remote, or a credential missing from
    the environment, is its result, not an exception."""
    try:
        return attempt(connector_http_client(config))
    except RemoteRefused as refused:
        return refused.result
    except MissingCredential as exc:
        return DeliveryResult(ok=False, retry=False, detail=str(exc))


def one_by_one(deliver: Callable[[OutboxMessage, ItsmRecord | None], DeliveryResult], messages: list[OutboxMessage],
               record: ItsmRecord | None) -> Iterator[DeliveryResult]:
    """A change's updates delivered in turn, each on its own, for a connector that reads nothing once per batch; the
    remote record the first one made (when the change had none) is named to those after it."""
    for message in messages:
        result = deliver(message, record)
        yield result
        if record is None and result.ok and result.remote_id:
            record = ItsmRecord(connector=message.connector, change_id=message.change_id, remote_id=result.remote_id,
                                remote_number=result.remote_number)


def call(client: httpx.Client, config: ConnectorConfig, method: str, path: str, **kwargs) -> httpx.Response:
    """The remote's successful answer to `path` under the connector's URL; anything else raises RemoteRefused with
    the result it amounts to."""
    try:
        response = client.request(method, config.url + path, **kwargs)
    except httpx.TimeoutException:
        raise RemoteRefused(DeliveryResult(ok=False, retry=True, detail=redacted(
            f"{method} {config.url}{path}: no answer within {REQUEST_SECONDS:g} s.", config))) from None
    except httpx.HTTPError as exc:
        raise RemoteRefused(DeliveryResult(ok=False, retry=True, detail=redacted(
            f"{method} {config.url}{path}: {type(exc).__name__}: {excerpt(str(exc))}", config))) from None
    if response.is_success:
        return response
    raise RemoteRefused(refusal(response, config), response.status_code)


def refusal(response: httpx.Response, config: ConnectorConfig) -> DeliveryResult:
    """A failed answer sorted: 429 and 503 are tried again when Retry-After says (or by backoff), other 5xx by
    backoff; a 4xx is the request's fault and is not tried again; a redirect is not followed, so it is neither."""
    status = response.status_code
    detail = redacted(f"{response.request.method} {response.request.url} answered {status}: "
                      f"{excerpt(response.text)}", config)
    if status in BUSY:
        return DeliveryResult(ok=False, retry=True, retry_after=retry_after(response.headers.get("Retry-After")),
                              detail=detail)
    return DeliveryResult(ok=False, retry=status >= 500, detail=detail)


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds from now: given as seconds or as an HTTP date (RFC 9110); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def answer_json(response: httpx.Response, config: ConnectorConfig):
    """The JSON of a successful answer; a body that is not JSON (a login page, a proxy's error) is tried again."""
    try:
        return response.json()
    except ValueError:
        raise RemoteRefused(DeliveryResult(ok=False, retry=True, detail=redacted(
            f"{response.request.method} {response.request.url} answered {response.status_code} with a body that is "
            f"not JSON: {excerpt(response.text)}", config))) from None
