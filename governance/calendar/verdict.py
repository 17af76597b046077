"""The calendar's one verdict on a change: what stops it at a time, for its scope, window and type. The change
services ask it, and the gate weighs the same rules on the facts its SQL gathers (built from the same scope and
lockdown conditions)."""

from dataclasses import dataclass
from datetime import datetime

from cmdb.models import ConfigurationItem
from governance.calendar.selectors import FreezeHit, freezes_covering, lockdowns_covering
from governance.models.calendar import Lockdown, Severity
from governance.models.changes import ChangeType


def freeze_stops(severity: str, change_type: str | None) -> bool:
    """A hard freeze stops every change but an emergency one (the emergency CAB approved it to go through); a soft
    freeze stops nothing, it asks one approval more."""
    return severity == Severity.HARD and change_type != ChangeType.EMERGENCY


@dataclass(frozen=True)
class CalendarVerdict:
    lockdowns: list[Lockdown]
    freezes: list[FreezeHit]
    change_type: str | None

    @property
    def stopping_freezes(self) -> list[FreezeHit]:
        return [hit for hit in self.freezes if freeze_stops(hit.freeze.severity, self.change_type)]

    @property
    def overridden_freezes(self) -> list[FreezeHit]:
        """Hard freezes the change goes ahead in: an emergency change's."""
        return [hit for hit in self.freezes
                if hit.freeze.severity == Severity.HARD and not freeze_stops(hit.freeze.severity, self.change_type)]

    @property
    def soft_freezes(self) -> list[FreezeHit]:
        return [hit for hit in self.freezes if hit.freeze.severity == Severity.SOFT]


def calendar_verdict(cis: list[ConfigurationItem], environment_id: int | None, change_type: str | None,
                     start: datetime | None, end: datetime | None, at: datetime) -> CalendarVerdict:
    """The lockdowns in force at `at` and the freezes over the window [start, end) (none without a window) that
    cover any of these CIs in that environment."""
    freezes = freezes_covering(cis, environment_id, start, end) if start is not None and end is not None else []
    return CalendarVerdict(lockdowns=lockdowns_covering(cis, environment_id, at), freezes=freezes,
                           change_type=change_type)
