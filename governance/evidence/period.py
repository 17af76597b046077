"""The period and scope an auditor asks about, read from what they typed: dates or moments, checked once here
for the pages, the API and the bundle alike."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from governance.core.errors import InvalidInput
from governance.core.inputs import offset_refusal, text_fault
from governance.models import EvidenceScope

# An audit period is a quarter or a fiscal year; a longer one is a mistake, and would make a population no page
# or bundle should be asked to hold at once.
MAX_PERIOD = timedelta(days=400)


@dataclass(frozen=True)
class Period:
    """From `start` (inclusive) to `end` (exclusive), both aware, over the CIs `scope` names."""

    start: datetime
    end: datetime
    scope: str = EvidenceScope.ALL


def period_from(start: str, end: str, scope: str = EvidenceScope.ALL) -> Period:
    """The period from ISO dates or moments: a date is midnight UTC, and an end date counts whole (the period runs
    to the next midnight); a moment without an offset is UTC."""
    if not isinstance(scope, str) or scope not in EvidenceScope.values:
        raise InvalidInput(f"The scope is one of {', '.join(EvidenceScope.values)}.", field="scope",
                           code="invalid_choice")
    begins = _moment(start, field="start", whole_day=False)
    ends = _moment(end, field="end", whole_day=True)
    if ends <= begins:
        raise InvalidInput("The period must end after it starts.", field="end")
    if ends - begins > MAX_PERIOD:
        raise InvalidInput(f"A period spans at most {MAX_PERIOD.days} days.", field="end", code="too_long")
    return Period(start=begins, end=ends, scope=scope)


def _moment(value: str, *, field: str, whole_day: bool) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("Give a date (2026-01-31) or a moment (2026-01-31T12:00:00Z).", field=field,
                           code="required")
    fault = text_fault(value)
    if fault:
        raise InvalidInput(fault.message, field=field, code=fault.code)
    text = value.strip()
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
        if day is not None:
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1) if whole_day else moment
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{text[:40]!r} is not an ISO date or moment.", field=field, code="invalid_date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    refusal = offset_refusal(moment)
    if refusal:
        raise InvalidInput(refusal, field=field, code="offset_out_of_range")
    return moment
