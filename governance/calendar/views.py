"""The calendar's own pages: the stop-the-line button (declaring and lifting a lockdown) and revoking a feed.
The calendar page with the changes on it is governance.changes.calendar_views."""

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from governance.calendar import selectors, services
from governance.calendar.forms import LockdownForm
from governance.core.errors import DomainError, refuse_if_forbidden
from governance.models.calendar import Lockdown


def back_to_calendar(request):
    """Back to the calendar page the form was sent from, its view, day and filters kept (the browser's Referer);
    the calendar's own address when there is none."""
    sent_from = request.META.get("HTTP_REFERER", "")
    calendar = reverse("calendar:calendar")
    if url_has_allowed_host_and_scheme(sent_from, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        parts = urlsplit(sent_from)
        if parts.path == calendar:
            return redirect(f"{calendar}?{parts.query}" if parts.query else calendar)
    return redirect(calendar)


@login_required
@require_POST
def lockdown_declare(request):
    form = LockdownForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{f}: {' '.join(e)}" for f, e in form.errors.items()))
        return back_to_calendar(request)
    data = form.cleaned_data
    environments = [data["environment"]] if data.get("environment") else []
    try:
        lockdown = services.lockdown_declare(actor=request.user, reason=data["reason"], until=data.get("until"),
                                             scope={"everything": not environments}, environments=environments)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        held = list(lockdown.held_changes.order_by("number").values_list("number", flat=True))
        messages.success(request, "Lockdown declared: the line is stopped. " + (
            f"On hold: {', '.join(held)}." if held else "No change in flight falls in its scope."))
    return back_to_calendar(request)


@login_required
@require_POST
def lockdown_lift(request, pk: int):
    lockdown = get_object_or_404(Lockdown, pk=pk)
    held = list(lockdown.held_changes.order_by("number").values_list("number", flat=True))
    try:
        services.lockdown_lift(actor=request.user, lockdown=lockdown, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, "Lockdown lifted." + (f" No longer on hold: {', '.join(held)}." if held else ""))
    return back_to_calendar(request)


@login_required
@require_POST
def calendar_feed_revoke(request, pk: int):
    feed = get_object_or_404(selectors.calendar_feeds_of(request.user), pk=pk)
    services.calendar_feed_revoke(actor=request.user, feed=feed)
    messages.success(request, f"Feed “{feed.name}” revoked: its address no longer answers.")
    return redirect("calendar:feeds")
