"""Writes to the release calendar: windows and their occurrences, lockdowns declared and lifted, feeds."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cmdb.models import Team
from governance.audit.ledger import audit_record
from governance.calendar.permissions import can_declare_lockdown, can_edit_window, can_manage_feed, can_read_calendar
from governance.calendar.recurrence import occurrences
from governance.calendar.selectors import SCOPE_FIELDS, covers_any, names_a_scope
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, DomainError, Forbidden, InvalidInput
from governance.core.secrets import create_named, secret_draw
from governance.models.calendar import CalendarFeed, FreezeWindow, Lockdown, MaintenanceWindow, Occurrence
from governance.models.changes import APPROVED_STATES, ChangeRequest

# Occurrences are kept from a month back to this far ahead; a daily task moves the horizon on.
HORIZON = timedelta(days=400)
PAST = timedelta(days=31)


def window_occurrences_refresh(window: FreezeWindow | MaintenanceWindow, *, now: datetime | None = None) -> int:
    """Recompute a window's occurrences for the horizon; returns how many there are."""
    now = now or timezone.now()
    owner: dict[str, FreezeWindow | MaintenanceWindow] = (
        {"freeze": window} if isinstance(window, FreezeWindow) else {"maintenance": window})
    with transaction.atomic():
        Occurrence.objects.filter(**owner).delete()
        spans = occurrences(window, now - PAST, now + HORIZON) if window.active else []
        Occurrence.objects.bulk_create([Occurrence(period=(start, end), **owner) for start, end in spans])
    return len(spans)


def window_save_refusal(*, actor: ActingUser, window: FreezeWindow | MaintenanceWindow, fields: dict, environments=None,
                        cis=None) -> DomainError | None:
    """Why `actor` may not save `window` with these values, if not: the calendar's permission, then a scope
    that names something. The model's own rules are its clean()'s; `None` for a relation keeps what it has."""
    if not can_edit_window(actor, type(window), "add" if window.pk is None else "change"):
        return Forbidden("Release managers and administrators keep freeze and maintenance windows.")
    kept = {"environments": environments, "cis": cis}
    for name, given in kept.items():
        if given is None:
            kept[name] = list(getattr(window, name).all()) if window.pk is not None else []
    scope = {name: fields.get(name, getattr(window, name)) for name in SCOPE_FIELDS if name not in kept}
    if not names_a_scope({**scope, **kept}):
        return InvalidInput("Say what the window covers, or that it covers everything.", field="everything")
    return None


def window_save(*, actor: ActingUser, window: FreezeWindow | MaintenanceWindow, fields: dict, environments=None,
                cis=None) -> FreezeWindow | MaintenanceWindow:
    """Create or edit a freeze or maintenance window (unsaved `window` to create), and recompute its stored
    occurrences in the same transaction, so enforcement sees the new times at once."""
    refusal = window_save_refusal(actor=actor, window=window, fields=fields, environments=environments, cis=cis)
    if refusal is not None:
        raise refusal
    with transaction.atomic():
        if window.pk is not None:  # two edits of one window take turns
            window = type(window).objects.select_for_update().get(pk=window.pk)
        for name, value in fields.items():
            setattr(window, name, value)
        try:
            window.full_clean()
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise InvalidInput(messages[0], field=None if field == "__all__" else field) from None
        window.save()
        if environments is not None:
            window.environments.set(environments)
        if cis is not None:
            window.cis.set(cis)
        window_occurrences_refresh(window)
    return window


def calendar_occurrences_refresh() -> int:
    """Every window's occurrences, moved on to today's horizon (the daily task)."""
    return sum(window_occurrences_refresh(w) for model in (FreezeWindow, MaintenanceWindow)
               for w in model.objects.all())


def lockdown_declare_refusal(*, actor: ActingUser, reason: str, until: datetime | None, scope: dict, environments=(),
                             cis=(), now: datetime) -> DomainError | None:
    """Why `actor` may not declare this lockdown, if not: who may, a reason, a future end, a scope."""
    if not can_declare_lockdown(actor):
        return Forbidden("Release managers and incident commanders declare lockdowns.")
    if not reason.strip():
        return InvalidInput("Say why the line is stopped.", field="reason")
    if until is not None and until <= now:
        return InvalidInput("A lockdown must last into the future.", field="until")
    if not names_a_scope({**scope, "environments": environments, "cis": cis}):
        return InvalidInput("Say what the lockdown covers, or that it covers everything.", field="everything")
    return None


def lockdown_declare(*, actor: ActingUser, reason: str, until: datetime | None = None, scope: dict | None = None,
                     environments=(), cis=()) -> Lockdown:
    """Stop the line now. Changes in flight in scope go on hold at once."""
    now = timezone.now()
    scope = scope or {}
    refusal = lockdown_declare_refusal(actor=actor, reason=reason, until=until, scope=scope,
                                       environments=environments, cis=cis, now=now)
    if refusal is not None:
        raise refusal
    with transaction.atomic():
        lockdown = Lockdown.objects.create(reason=reason, declared_by=actor, declared_at=now, until=until, **scope)
        lockdown.environments.set(environments)
        lockdown.cis.set(cis)
        lockdown = Lockdown.objects.prefetch_related("environments", "cis").get(pk=lockdown.pk)  # scope read once
        held = 0
        in_flight = ChangeRequest.objects.select_for_update().filter(status__in=APPROVED_STATES, held_by__isnull=True)
        for change in in_flight.prefetch_related("affected_cis"):
            if covers_any(lockdown, list(change.affected_cis.all()), change.environment_id):
                change.held_by = lockdown
                change.save(update_fields=["held_by", "updated_at"])
                held += 1
        audit_record("lockdown_declared", obj=lockdown, context={"reason": reason, "changes_held": held})
    return lockdown


def lockdown_lift(*, actor: ActingUser, lockdown: Lockdown, reason: str = "") -> Lockdown:
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


def calendar_feed_create(*, actor: ActingUser, name: str, team: Team | None = None) -> IssuedFeed:
    """A private iCalendar feed of the calendar, or of one team's scope. The secret is returned this once:
    only its digest is kept, so a lost URL is revoked and replaced, never shown again."""
    if not can_read_calendar(actor):
        raise Forbidden("Only people who read the release calendar may subscribe to it.")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A feed needs a name.", field="name")
    longest = CalendarFeed._meta.get_field("name").max_length
    if longest is not None and len(name) > longest:
        raise InvalidInput("Keep the name within 100 characters.", field="name")
    if CalendarFeed.objects.filter(owner=actor, name=name, revoked_at__isnull=True).exists():
        raise InvalidInput(f"You already have a feed named {name!r}.", field="name")
    drawn = secret_draw(FEED_PREFIX)
    feed = create_named(lambda: CalendarFeed.objects.create(owner=actor, team=team, name=name, prefix=drawn.prefix,
                                                            digest=drawn.digest, created_at=timezone.now()),
                        taken=f"You already have a feed named {name!r}.")
    return IssuedFeed(feed=feed, secret=drawn.secret)


def calendar_feed_revoke(*, actor: ActingUser, feed: CalendarFeed) -> CalendarFeed:
    """Stop a feed: its URL answers 404 from now on. Revoking twice is harmless."""
    if not can_manage_feed(actor, feed):
        raise Forbidden("You may only revoke your own calendar feeds.")
    with transaction.atomic():
        feed = CalendarFeed.objects.select_for_update().get(pk=feed.pk)
        if feed.revoked_at is None:
            feed.revoked_at = timezone.now()
            feed.save(update_fields=["revoked_at"])
    return feed
