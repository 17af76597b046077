"""What any input value must be before a query reads it or a row stores it, checked in one place for the API's
parser, fields and filters, the pages' filters and the bodies a view parses itself.

PostgreSQL refuses a NUL character in text and jsonb, and an offset beyond ±15:59 in a timestamptz; Python
accepts both (a lone surrogate too, which is no text at all): left unchecked, each reaches the database and
comes back as a server error instead of a refusal naming the input.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django_filters import IsoDateTimeFilter
from django_filters.fields import IsoDateTimeField

from governance.core.errors import InvalidInput

# Deeper than any document the API takes (a CI's attributes, a provenance attestation, GitHub's payloads);
# json.loads itself recurses once a level and fails only near Python's recursion limit.
MAX_JSON_DEPTH = 64
# How many names one list of an input may hold unless its field says otherwise (a change's CIs, a freeze's
# environments, a token's services): each list is resolved in one query, but it must still end somewhere.
MAX_NAMES_PER_LIST = 200
# PostgreSQL's range for a time zone offset in timestamptz input; Python's datetime accepts up to ±23:59.
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a valid pair is decoded into one code point


@dataclass(frozen=True)
class TextFault:
    code: str
    message: str


NUL = TextFault("nul_character", "A NUL character (\\u0000) cannot be stored.")
SURROGATE = TextFault("lone_surrogate", "An unpaired surrogate (\\ud800 to \\udfff) is not text.")


def text_fault(value: str) -> TextFault | None:
    """Why PostgreSQL cannot hold `value` as text, if it cannot."""
    if "\x00" in value:
        return NUL
    if _LONE_SURROGATE.search(value):
        return SURROGATE
    return None


class JSONRefused(ValueError):
    """JSON refused before it reaches a query or a jsonb column; `path` locates the fault (`a.b[2]`), `line` a
    syntax error."""

    def __init__(self, code: str, message: str, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.code, self.message, self.path, self.line = code, message, path, line


def json_refusal(value: Any, *, path: str | None = None) -> JSONRefused | None:
    """Why a decoded JSON value cannot be stored or looked up, if it cannot: nested deeper than MAX_JSON_DEPTH,
    or a key or string that is no storable text. Walked without recursion."""
    stack = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            fault = text_fault(item)
            if fault:
                return JSONRefused(fault.code, fault.message, where)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:  # named by the field it starts in, not by a path as deep as it goes
                return JSONRefused("too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused.",
                                   re.split(r"[.\[]", where or "")[0] or None)
            if isinstance(item, dict):
                for key, member in item.items():
                    fault = text_fault(key)
                    if fault:
                        return JSONRefused(fault.code, f"A key: {fault.message}", where)
                    stack.append((member, f"{where}.{key}" if where else key, depth + 1))
            else:
                stack.extend((member, f"{where or ''}[{index}]", depth + 1) for index, member in enumerate(item))
    return None


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400: jsonb has no infinity
        raise JSONRefused("invalid_number", f"{text[:40]} is out of range for a JSON number.")
    return number


def _constant(name: str):
    raise JSONRefused("invalid_number", f"{name} is not JSON.")


def json_parsed(text: str) -> Any:
    """`json.loads`, bounded: a JSONRefused (a ValueError) for bad JSON, for nesting beyond MAX_JSON_DEPTH and
    for text PostgreSQL cannot hold. The walk runs only when the text could hold such a fault: nesting needs
    brackets, and a NUL or a surrogate in valid JSON needs a \\u escape."""
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_constant)
    except RecursionError:
        raise JSONRefused("too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused.") from None
    except JSONRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JSONRefused("parse_error", f"not valid JSON ({exc.msg}).", line=exc.lineno) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise JSONRefused("parse_error", f"not valid JSON ({exc}).") from None
    if "\\u" in text or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        refusal = json_refusal(value)
        if refusal:
            raise refusal
    return value


def offset_refusal(moment: datetime) -> str | None:
    """Why PostgreSQL would refuse `moment`'s offset, if it would."""
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return "The time zone offset must lie within ±15:59."
    return None


class MomentField(IsoDateTimeField):
    """An ISO 8601 moment in a query string; without an offset, UTC. A '+' left unencoded in a query string
    arrives as a space, so a space before the offset is read as '+'."""

    def to_python(self, value):
        try:
            moment = super().to_python(value)
        except forms.ValidationError:
            if not isinstance(value, str) or " " not in value.strip():
                raise
            moment = super().to_python(value.strip()[::-1].replace(" ", "+", 1)[::-1])
        if moment is not None and offset_refusal(moment):
            raise forms.ValidationError(offset_refusal(moment), code="offset_out_of_range")
        return moment


class MomentInput(forms.DateTimeInput):
    """A date and time picker for a moment filter (`datetime-local`, to the second). It shows any moment the
    field reads, offsets and all, as the UTC wall-clock time the picker holds; an unreadable value as it was typed,
    beside its error."""

    input_type = "datetime-local"
    PICKER_FORMAT = "%Y-%m-%dT%H:%M:%S"

    def __init__(self, attrs=None):
        super().__init__(attrs={"step": "1", **(attrs or {})}, format=self.PICKER_FORMAT)

    def format_value(self, value):
        if isinstance(value, str):
            try:
                value = MomentField(required=False).to_python(value) or value
            except forms.ValidationError:
                return value
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime(self.PICKER_FORMAT)
        return super().format_value(value)


class WordListField(forms.CharField):
    """A list of words (feature flags, digests, names), one per line or separated by commas: at most `max_items`,
    each storable text (CharField's own check of NUL reads the list's repr, which shows none)."""

    widget = forms.Textarea(attrs={"rows": 2})

    def __init__(self, *, max_items: int = MAX_NAMES_PER_LIST, **kwargs):
        self.max_items = max_items
        super().__init__(**kwargs)

    # A list where CharField gives a string: the point of the field, so its signature differs from the base.
    def to_python(self, value) -> list[str]:  # type: ignore[override]
        return [flag for flag in re.split(r"[\s,]+", value or "") if flag]

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def validate(self, value) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if len(value) > self.max_items:
            raise forms.ValidationError(f"Give at most {self.max_items}; {len(value)} were given.", code="too_many")
        for word in value:
            fault = text_fault(word)
            if fault:
                raise forms.ValidationError(fault.message, code=fault.code)


class MomentFilter(IsoDateTimeFilter):
    """The one datetime filter of lists, pages and API alike."""

    field_class = MomentField


def query_moment(value: str | None, *, field: str) -> datetime | None:
    """A moment from a query parameter read by hand, checked as MomentFilter checks one; None when not given."""
    try:
        return MomentField(required=False).clean(value)
    except forms.ValidationError as exc:
        raise InvalidInput(exc.messages[0], field=field, code=exc.error_list[0].code or "invalid") from None
