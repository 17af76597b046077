"""Who is acting, wherever code runs: a request, a Celery task, or a command.

The acting identity travels to the database triggers as a trailing SQL comment on every write statement
(`/* changeboard-audit:<base64 JSON> */`), read back by the trigger with `current_query()`. That costs no
extra round trip, cannot go stale across a rolled-back transaction the way a session variable can, and
survives connection poolers. Base64 has no `*`, so the comment cannot be closed early by a user name.
"""

import base64
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from governance.models.audit import ActorKind

COMMENT_PREFIX = "changeboard-audit:"
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Actor:
    """The identity recorded on an event."""

    kind: str
    name: str
    user_id: int | None = None
    token_id: int | None = None
    request_id: str = ""
    client_ip: str = ""
    context: dict[str, Any] = field(default_factory=dict)


_source: ContextVar[Any] = ContextVar("changeboard_audit_source", default=None)


def _default_actor() -> Actor:
    command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:2]]) if sys.argv else "changeboard"
    return Actor(kind=ActorKind.SYSTEM, name=command[:200])


def current_actor() -> Actor:
    """The actor of the running request or task, else the system process itself."""
    source = _source.get()
    if source is None:
        return _default_actor()
    if isinstance(source, Actor):
        return source
    return _actor_of_request(source)


def _actor_of_request(request) -> Actor:
    return actor_for(request, getattr(request, "user", None), getattr(request, "auth", None))


def actor_for(request, user, token) -> Actor:
    """The actor of a request made by `user`, with `token` when it authenticated with an API token."""
    from governance.models import ApiToken

    request_id, ip = getattr(request, "request_id", ""), client_ip(request)
    if user is None or not user.is_authenticated:
        return Actor(kind=ActorKind.ANONYMOUS, name="", request_id=request_id, client_ip=ip)
    if isinstance(token, ApiToken):
        return Actor(kind=ActorKind.TOKEN, name=user.get_username(), user_id=user.pk, token_id=token.pk,
                     request_id=request_id, client_ip=ip)
    return Actor(kind=ActorKind.USER, name=user.get_username(), user_id=user.pk, request_id=request_id, client_ip=ip)


def client_ip(request) -> str:
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The proxy appends the address it saw; anything to its left came from the client.
            return forwarded.split(",")[-1].strip()[:45]
    return request.META.get("REMOTE_ADDR", "")[:45]


@contextlib.contextmanager
def acting_as(actor_or_request: Any) -> Iterator[None]:
    """Record writes inside the block as made by this Actor, or by the user of this request."""
    token = _source.set(actor_or_request)
    try:
        yield
    finally:
        _source.reset(token)


def encoded_actor(actor: Actor) -> str:
    payload = {k: v for k, v in asdict(actor).items() if v not in (None, "", {})}
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def audit_comment_wrapper(execute, sql, params, many, context):
    """Django execute wrapper: tag write statements with the acting identity for the audit trigger."""
    if isinstance(sql, str) and _WRITE.match(sql):
        sql = f"{sql} /* {COMMENT_PREFIX}{encoded_actor(current_actor())} */"
    return execute(sql, params, many, context)


def install_wrapper(sender, connection, **kwargs) -> None:
    if audit_comment_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(audit_comment_wrapper)


# Celery: a task acts as "task:<name>", on behalf of the user who queued it when there was one.
def attach_actor_to_task(headers=None, **kwargs) -> None:
    if headers is None:
        return
    actor = current_actor()
    if actor.user_id is not None:
        # A task queued by a task (a deployment's next step) acts for the person who queued the first one.
        person = actor.context.get("for", actor.name) if actor.kind == ActorKind.TASK else actor.name
        headers["changeboard_actor"] = {"user_id": actor.user_id, "name": person, "request_id": actor.request_id}


def enter_task_context(task_id=None, task=None, **kwargs) -> None:
    queued_by = getattr(task.request, "changeboard_actor", None) or {}
    name = f"task:{task.name}" + (f" for {queued_by['name']}" if queued_by.get("name") else "")
    actor = Actor(kind=ActorKind.TASK, name=name[:200], user_id=queued_by.get("user_id"),
                  request_id=queued_by.get("request_id", ""),
                  context={"task_id": task_id, **({"for": queued_by["name"]} if queued_by.get("name") else {})})
    task.request.changeboard_audit_token = _source.set(actor)


def leave_task_context(task=None, **kwargs) -> None:
    token = getattr(task.request, "changeboard_audit_token", None)
    if token is not None:
        _source.reset(token)
