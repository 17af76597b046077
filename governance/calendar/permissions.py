"""Who may read and keep the release calendar (the roles are granted in migration 0009_calendar_roles)."""

from governance.models.calendar import CalendarFeed


def can_read_calendar(user) -> bool:
    return user.is_authenticated and user.is_active and user.has_perm("governance.view_freezewindow")


def can_edit_window(user, model, verb: str) -> bool:
    """`verb` is add, change or delete; release managers and admins hold all three."""
    return can_read_calendar(user) and user.has_perm(f"governance.{verb}_{model._meta.model_name}")


def can_declare_lockdown(user) -> bool:
    return user.is_authenticated and user.is_active and user.has_perm("governance.declare_lockdown")


def can_manage_feed(user, feed: CalendarFeed) -> bool:
    return user.is_authenticated and user.is_active and (
        feed.owner_id == user.pk or user.has_perm("governance.change_calendarfeed"))
