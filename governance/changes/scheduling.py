"""When a change may run: the slots its calendar leaves free."""

from bisect import bisect_right
from datetime import datetime, timedelta

from django.utils import timezone

from governance.calendar.selectors import (
    covering,
    freeze_occurrences_between,
    lockdowns_covering,
    maintenance_windows_for,
)
from governance.changes.selectors import changes_in_the_way
from governance.models.calendar import FreezeWindow, Occurrence


def slot_length(change) -> timedelta:
    """How long a slot for this change lasts: as long as its window, an hour when it has none."""
    if change.planned_start and change.planned_end:
        return change.planned_end - change.planned_start
    return timedelta(hours=1)


def schedule_suggestions(change, *, count: int = 5, after: datetime | None = None,
                         horizon: timedelta = timedelta(days=60)) -> list[tuple[datetime, datetime]]:
    """The next `count` slots for this change: inside a maintenance window that governs it (else on the hour),
    clear of every freeze and lockdown in its scope, and of other changes touching its CIs or blast radius."""
    after = (after or timezone.now()).replace(second=0, microsecond=0)
    length = slot_length(change)
    cis = list(change.affected_cis.all())
    end = after + horizon
    windows = maintenance_windows_for(change.change_type, cis, change.environment_id)
    if windows:
        spans = [(o.period.lower, o.period.upper) for o in Occurrence.objects.filter(
            maintenance__in=windows, period__overlap=(after, end)).order_by("period")]
    else:
        first = after if after.minute == 0 else after.replace(minute=0) + timedelta(hours=1)
        spans = [(first + timedelta(hours=h), end) for h in range(int(horizon.total_seconds() // 3600))]
    frozen = covering(freeze_occurrences_between(after, end), FreezeWindow, cis, change.environment_id)
    blocked = [(period.lower, period.upper) for period in frozen.values_list("period", flat=True)]
    blocked += [(lockdown.declared_at, lockdown.until or end)
                for lockdown in lockdowns_covering(cis, change.environment_id, after)]
    blocked += list(changes_in_the_way(change, [ci.pk for ci in cis], after, end)
                    .values_list("planned_start", "planned_end").distinct())
    merged: list[list[datetime]] = []  # what is in the way, as sorted disjoint spans, searched by their ends
    for busy_start, busy_end in sorted(blocked):
        if merged and busy_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], busy_end)
        else:
            merged.append([busy_start, busy_end])
    ends = [busy_end for _, busy_end in merged]
    slots: list[tuple[datetime, datetime]] = []
    for span_start, span_end in spans:
        start = max(span_start, after)
        while start + length <= span_end:
            busy = bisect_right(ends, start)  # the first busy span ending after `start`
            if busy == len(merged) or merged[busy][0] >= start + length:
                break
            # In a maintenance window, try again once what is in the way is over; other slots keep to the hour.
            start = merged[busy][1] if windows else span_end
        if start + length <= span_end and start < end and (start, start + length) not in slots:
            slots.append((start, start + length))
            if len(slots) == count:
                break
    return slots
