"""The ledger: recording explicit events, sealing captures into the hash chain, checkpoints, verification.

Sealing happens after the audited transactions commit, in a transaction of its own that holds an
advisory lock, so audited writes never wait on each other for the chain (see governance.audit.capture).
"""

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from governance.audit import signing
from governance.audit.context import Actor, current_actor
from governance.core import ed25519
from governance.models import AuditCapture, AuditCheckpoint, AuditEvent

GENESIS_HASH = "0" * 64
SEAL_LOCK_KEY = 7_236_555_420_961_357_651  # pg advisory lock held by the one sealer at work
SEAL_BATCH = 5000
EVENT_FIELDS = (
    "occurred_at", "actor_kind", "actor_id", "actor_name", "token_id", "action", "object_type", "object_id",
    "object_label", "changes", "request_id", "client_ip", "context",
)
# Each field as the text the hash covers, produced by PostgreSQL so that sealing, verifying and an
# export all read the same bytes without parsing JSON: times in UTC with microseconds, absent ids as
# empty text, JSON as PostgreSQL's jsonb text (deterministic for a given value).
CANONICAL_COLUMNS = (
    """to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    "actor_kind", "coalesce(actor_id::text, '')", "actor_name", "coalesce(token_id::text, '')", "action",
    "object_type", "object_id", "object_label", "changes::text", "request_id", "client_ip", "context::text",
)
_SELECT_TEXTS = ", ".join(CANONICAL_COLUMNS)
# How each text the hash covers is written, in hashing order (seq, then EVENT_FIELDS): what the /audit/key/ page
# and the README tell an auditor who recomputes a hash with no code of ours.
HASHED_TEXTS = (
    ("seq", "the event's number, in decimal"),
    ("occurred_at", "the time in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ, always with six digits of microseconds"),
    ("actor_kind", "user, token, task, system, database or anonymous"),
    ("actor_id", "the acting person's user id in decimal; empty when there is none"),
    ("actor_name", "as recorded"),
    ("token_id", "the API token's id in decimal; empty when there is none"),
    ("action", "e.g. create, update, delete, login"),
    ("object_type", "e.g. cmdb.configurationitem; may be empty"),
    ("object_id", "may be empty"),
    ("object_label", "may be empty"),
    ("changes", "JSON, written as PostgreSQL writes jsonb (below)"),
    ("request_id", "may be empty"),
    ("client_ip", "may be empty"),
    ("context", "JSON, written as PostgreSQL writes jsonb (below)"),
)


def canonical_event(seq: int, texts: Sequence[str]) -> bytes:
    """The bytes an event's hash covers: seq and the fields of EVENT_FIELDS as netstrings (`len:text,`,
    the length in UTF-8 bytes). Length prefixes make the encoding unambiguous whatever the fields hold.
    """
    return "".join(
        [f"{len(t) if t.isascii() else len(t.encode())}:{t}," for t in (str(seq), *texts)]
    ).encode()


def event_hash(prev_hash: str, seq: int, texts: Sequence[str]) -> str:
    """SHA-256 over the previous event's hash, a newline, and this event's canonical bytes."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_event(seq, texts)).hexdigest()


def audit_record(action: str, *, obj=None, object_type: str = "", object_id: str = "", object_label: str = "",
                 changes: dict | None = None, context: dict | None = None, actor: Actor | None = None
                 ) -> AuditCapture:
    """Record an event that is not a row write (a login, a denial, an export, a gate decision).

    It joins the caller's transaction: if that rolls back, the event was never recorded.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_label = object_label or str(obj)
    actor = actor or current_actor()
    return AuditCapture.objects.create(
        occurred_at=timezone.now(), actor_kind=actor.kind, actor_id=actor.user_id, actor_name=actor.name,
        token_id=actor.token_id, action=action, object_type=object_type, object_id=object_id,
        object_label=object_label[:300], changes=changes or {}, request_id=actor.request_id,
        client_ip=actor.client_ip, context={**actor.context, **(context or {})},
    )


def audit_seal(*, wait: bool = True, batch: int = SEAL_BATCH) -> int:
    """Move committed captures into the ledger, chained in order; returns how many were sealed.

    With wait=False a sealer that finds another at work returns at once (the periodic task does that).
    """
    sealed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT true FROM pg_advisory_xact_lock(%s)" if wait else "SELECT pg_try_advisory_xact_lock(%s)",
                [SEAL_LOCK_KEY],
            )
            if not cursor.fetchone()[0]:
                return sealed
            cursor.execute(
                f"SELECT id, {_SELECT_TEXTS} FROM governance_auditcapture ORDER BY id LIMIT %s",  # noqa: S608 (constant columns)
                [batch],
            )
            captures = cursor.fetchall()
            if not captures:
                return sealed
            cursor.execute("SELECT seq, hash FROM governance_auditevent ORDER BY seq DESC LIMIT 1")
            seq, prev_hash = cursor.fetchone() or (0, GENESIS_HASH)
            sealed_at = timezone.now()
            columns = ", ".join(("seq", "sealed_at", "prev_hash", "hash", *EVENT_FIELDS))
            with cursor.copy(f"COPY governance_auditevent ({columns}) FROM STDIN") as copy:
                for _, *texts in captures:
                    seq += 1
                    digest = event_hash(prev_hash, seq, texts)
                    copy.write_row((seq, sealed_at, prev_hash, digest, *_nulls(texts)))
                    prev_hash = digest
            # After the COPY, never before: the queue's trigger lets a capture go only once its event is
            # among the ledger's newest (migration 0020).
            cursor.execute("DELETE FROM governance_auditcapture WHERE id = ANY(%s)", [[c[0] for c in captures]])
        sealed += len(captures)
        if len(captures) < batch:
            return sealed


def _nulls(texts: Sequence[str]) -> list[str | None]:
    """The canonical texts as column values: the empty text of an absent id is NULL again."""
    values: list[str | None] = list(texts)
    for index in _NULLABLE:
        if values[index] == "":
            values[index] = None
    return values


_NULLABLE = (EVENT_FIELDS.index("actor_id"), EVENT_FIELDS.index("token_id"))


def checkpoint_message(seq: int, head_hash: str, created_at: datetime) -> bytes:
    stamp = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"changeboard-audit-checkpoint:v1:{seq}:{head_hash}:{stamp}".encode()


def audit_checkpoint_create() -> AuditCheckpoint | None:
    """Seal, then sign the head of the chain; None when the ledger is empty. Repeats nothing already signed."""
    audit_seal()
    head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    if head is None:
        return None
    latest = AuditCheckpoint.objects.order_by("-seq", "-id").first()
    if latest is not None and latest.seq == head[0]:
        return latest
    created_at = timezone.now()
    key = signing.public_key()
    return AuditCheckpoint.objects.create(
        seq=head[0], head_hash=head[1], created_at=created_at, key_id=ed25519.key_id(key),
        signature=signing.sign(checkpoint_message(head[0], head[1], created_at)),
    )


@dataclass
class Verification:
    """The outcome of walking the chain and the checkpoints; `problem` names the first break."""

    events: int = 0
    checkpoints: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problem: str | None = None
    pending: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def audit_verify(*, public_keys: list | None = None, chunk: int = 20000) -> Verification:
    """Walk every event and every checkpoint; stop at the first broken link and say what is wrong."""
    report = Verification(pending=AuditCapture.objects.count())
    expected, prev_hash = 1, GENESIS_HASH
    checkpoints = list(AuditCheckpoint.objects.order_by("seq", "id"))
    wanted = {c.seq for c in checkpoints}
    hashes_at: dict[int, str] = {}
    # A server-side cursor streams the ledger in chunks, whatever its size.
    connection.ensure_connection()
    # A server-side cursor streams the ledger in chunks; a thread fetches the next chunk while this one
    # is hashed, so PostgreSQL's work and ours overlap.
    with (transaction.atomic(), connection.connection.cursor(name="audit_verify") as cursor,
          ThreadPoolExecutor(max_workers=1) as fetcher):
        cursor.execute(
            f"SELECT seq, prev_hash, hash, {_SELECT_TEXTS} FROM governance_auditevent ORDER BY seq"  # noqa: S608
        )
        pending = fetcher.submit(cursor.fetchmany, chunk)
        while rows := pending.result():
            pending = fetcher.submit(cursor.fetchmany, chunk)
            for seq, stored_prev, stored_hash, *texts in rows:
                if seq != expected or stored_prev != prev_hash:
                    problem = _link_problem(seq, expected, stored_prev, prev_hash)
                elif event_hash(prev_hash, seq, texts) != stored_hash:
                    problem = f"event #{seq} was altered: its content no longer matches its hash"
                else:
                    problem = None
                if problem:
                    report.problem = problem
                    pending.result()
                    return report
                if seq in wanted:
                    hashes_at[seq] = stored_hash
                prev_hash, expected = stored_hash, expected + 1
            report.events += len(rows)
    report.head_seq, report.head_hash = expected - 1, prev_hash
    report.problem = _verify_checkpoints(checkpoints, hashes_at, report.head_seq, public_keys)
    report.checkpoints = len(checkpoints)
    return report


def _link_problem(seq: int, expected: int, stored_prev: str, prev_hash: str) -> str:
    if seq > expected:
        return f"event #{expected} is missing: the ledger goes from #{expected - 1} to #{seq}"
    if seq < expected:
        return f"event #{seq} appears out of order after #{expected - 1}"
    return (
        f"event #{seq} does not follow event #{seq - 1}: it names {stored_prev[:16]}… as the previous "
        f"hash, but event #{seq - 1} hashes to {prev_hash[:16]}… (an event was inserted, removed or moved)"
    )


def _verify_checkpoints(checkpoints, hashes_at: dict[int, str], head_seq: int, public_keys) -> str | None:
    if not checkpoints:
        return None
    keys = {ed25519.key_id(k): k for k in (public_keys if public_keys is not None else [signing.public_key()])}
    for checkpoint in checkpoints:
        name = f"checkpoint {checkpoint.pk} (event #{checkpoint.seq}, signed {checkpoint.created_at:%Y-%m-%d %H:%M:%S})"
        key = keys.get(checkpoint.key_id)
        if key is None:
            return f"{name} was signed by key {checkpoint.key_id[:16]}…, which is not a trusted key"
        message = checkpoint_message(checkpoint.seq, checkpoint.head_hash, checkpoint.created_at)
        if not ed25519.signature_valid(key, message, checkpoint.signature):
            return f"{name} has an invalid signature: the checkpoint itself was altered"
        if checkpoint.seq > head_seq:
            return f"{name} covers event #{checkpoint.seq}, but the ledger ends at #{head_seq}: events were removed"
        if hashes_at.get(checkpoint.seq) != checkpoint.head_hash:
            return f"{name} does not match event #{checkpoint.seq}: the ledger up to it was rewritten"
    return None
