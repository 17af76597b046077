"""Writes to the release calendar: windows and their occurrences, lockdowns declared and lifted, feeds."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from cmdb.models import Team
from governance.audit.ledger import audit_record
from governance.calendar.permissions import can_declare_lockdown, can_manage_feed, can_read_calendar
from governance.calendar.recurrence import occurrences
from governance.calendar.selectors import covers_any, names_a_scope
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.core.secrets import create_named, secret_draw
from governance.models.calendar import CalendarFeed, FreezeWindow, Lockdown, MaintenanceWindow, Occurrence
from governance.models.changes import ChangeRequest
from governance.models.changes import ChangeStatus as S

# Occurrences are kept from a month back to this far ahead; a daily task moves the horizon on.
HORIZON = timedelta(days=400)
PAST = timedelta(days=31)
IN_FLIGHT = (S.APPROVED, S.SCHEDULED, S.IMPLEMENTING)


def window_occurrences_refresh(window: FreezeWindow | MaintenanceWindow, *, now: datetime | None = None) -> int:
    """Recompute a window's occurrences for the horizon; returns how many there are."""
    now = now or timezone.now()
    owner = {"freeze": window} if isinstance(window, FreezeWindow) else {"maintenance": window}
    with transaction.atomic():
        Occurrence.objects.filter(**owner).delete()
        spans = occurrences(window, now - PAST, now + HORIZON) if window.active else []
        Occurrence.objects.bulk_create([Occurrence(period=(start, end), **owner) for start, end in spans])
    return len(spans)


def calendar_occurrences_refresh() -> int:
    """Every window's occurrences, moved on to today's horizon (the daily task)."""
    return sum(window_occurrences_refresh(w) for model in (FreezeWindow, MaintenanceWindow)
               for w in model.objects.all())


def lockdown_declare(*, actor, reason: str, until: datetime | None = None, scope: dict | None = None,
                     environments=(), cis=()) -> Lockdown:
    """Stop the line now. Changes in flight in scope go on hold at once."""
    if not can_declare_lockdown(actor):
        raise Forbidden("Release managers and incident commanders declare lockdowns.")
    if not reason.strip():
        raise InvalidInput("Say why the line is stopped.", field="reason")
    now = timezone.now()
    if until is not None and until <= now:
        raise InvalidInput("A lockdown must last into the future.", field="until")
    scope = scope or {}
    if not names_a_scope({**scope, "environments": environments, "cis": cis}):
        raise InvalidInput("Say what the lockdown covers, or that it covers everything.", field="everything")
    with transaction.atomic():
        lockdown = Lockdown.objects.create(reason=reason, declared_by=actor, declared_at=now, until=until, **scope)
        lockdown.environments.set(environments)
        lockdown.cis.set(cis)
        lockdown = Lockdown.objects.prefetch_related("environments", "cis").get(pk=lockdown.pk)  # scope read once
        held = 0
        for change in ChangeRequest.objects.select_for_update().filter(status__in=IN_FLIGHT, held_by__isnull=True) \
                .prefetch_related("affected_cis"):
            if covers_any(lockdown, list(change.affected_cis.all()), change.environment_id):
                change.held_by = lockdown
                change.save(update_fields=["held_by", "updated_at"])
                held += 1
        audit_record("lockdown_declared", obj=lockdown, context={"reason": reason, "changes_held": held})
    return lockdown


def lockdown_lift(*, actor, lockdown: Lockdown, reason: str = "") -> Lockdown:
    if not can_declare_lockdown(actor):
        raise Forbidden("Release managers and incident commanders lift lockdowns.")
    with transaction.atomic():
        lockdown = Lockdown.objects.select_for_update().get(pk=lockdown.pk)
        if lockdown.lifted_at is not None:
            raise Conflict("This lockdown was already lifted.")
        lockdown.lifted_at, lockdown.lifted_by, lockdown.lift_reason = timezone.now(), actor, reason
        lockdown.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
        released = ChangeRequest.objects.filter(held_by=lockdown).update(held_by=None, updated_at=timezone.now())
        audit_record("lockdown_lifted", obj=lockdown, context={"reason": reason, "changes_released": released})
    return lockdown


FEED_PREFIX = "cbf_"  # a marker that lets scanners spot a leaked feed URL, not a secret


@dataclass(frozen=True)
class IssuedFeed:
    feed: CalendarFeed
    secret: str


def calendar_feed_create(*, actor, name: str, team: Team | None = None) -> IssuedFeed:
    """A private iCalendar feed of the calendar, or of one team's scope. The secret is returned this once:
    only its digest is kept, so a lost URL is revoked and replaced, never shown again."""
    if not can_read_calendar(actor):
        raise Forbidden("Only people who read the release calendar may subscribe to it.")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A feed needs a name.", field="name")
    if len(name) > CalendarFeed._meta.get_field("name").max_length:
        raise InvalidInput("Keep the name within 100 characters.", field="name")
    if CalendarFeed.objects.filter(owner=actor, name=name, revoked_at__isnull=True).exists():
        raise InvalidInput(f"You already have a feed named {name!r}.", field="name")
    drawn = secret_draw(FEED_PREFIX)
    feed = create_named(lambda: CalendarFeed.objects.create(owner=actor, team=team, name=name, prefix=drawn.prefix,
                                                            digest=drawn.digest, created_at=timezone.now()),
                        taken=f"You already have a feed named {name!r}.")
    return IssuedFeed(feed=feed, secret=drawn.secret)


def calendar_feed_revoke(*, actor, feed: CalendarFeed) -> CalendarFeed:
    """Stop a feed: its URL answers 404 from now on. Revoking twice is harmless."""
    if not can_manage_feed(actor, feed):
        raise Forbidden("You may only revoke your own calendar feeds.")
    with transaction.atomic():
        feed = CalendarFeed.objects.select_for_update().get(pk=feed.pk)
        if feed.revoked_at is None:
            feed.revoked_at = timezone.now()
            feed.save(update_fields=["revoked_at"])
    return feed
