"""The auditor's notes on exceptions: the one thing an auditor writes, kept apart from what it is about. The
table is governed, so each note is in the ledger by its trigger, with its author."""

import re
from collections.abc import Iterable

from governance.core.actors import ActingUser
from governance.core.errors import Forbidden, InvalidInput
from governance.core.inputs import text_fault
from governance.evidence.permissions import can_note
from governance.models import AuditorNote

MAX_NOTE_LENGTH = 5000
# An exception's key is its kind and the record it is about (approval_after_start:DEP0000045), as
# governance.evidence.exceptions makes it: a kind in snake case, a colon, a record number or id.
EXCEPTION_KEY = re.compile(r"[a-z][a-z0-9_]{0,79}:[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def exception_key_refusal(key: str) -> InvalidInput | None:
    """Why `key` names no exception, if it does not."""
    if not isinstance(key, str) or not EXCEPTION_KEY.fullmatch(key):
        return InvalidInput("An exception key is its kind and its record, e.g. approval_after_start:DEP0000045.",
                            field="exception_key")
    return None


def auditor_note_add(*, actor: ActingUser, exception_key: str, text: str) -> AuditorNote:
    if not can_note(actor):
        raise Forbidden("Only auditors write notes on exceptions.")
    refusal = exception_key_refusal(exception_key)
    if refusal is not None:
        raise refusal
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise InvalidInput("A note needs some text.", field="text")
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"A note holds at most {MAX_NOTE_LENGTH} characters.", field="text")
    fault = text_fault(text)
    if fault is not None:
        raise InvalidInput(fault.message, field="text", code=fault.code)
    return AuditorNote.objects.create(exception_key=exception_key, text=text, author=actor)


def notes_for(keys: Iterable[str]) -> dict[str, list[AuditorNote]]:
    """Each key's notes, oldest first (a key with none has an empty list)."""
    found: dict[str, list[AuditorNote]] = {key: [] for key in keys}
    for note in AuditorNote.objects.filter(exception_key__in=list(found)).select_related("author"):
        found[note.exception_key].append(note)
    return found
