"""The connectors page: each ITSM connector's last sync, backlog and failed updates, read by release managers and
administrators; administrators send a failed update again. Thin: the retry is one service call."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.itsm.outbox import connectors_status, outbox_retry
from governance.itsm.permissions import can_read_connectors, can_retry_outbox
from governance.models import OutboxMessage


def _reader(request) -> None:
    if not can_read_connectors(request.user):
        raise PermissionDenied("The ITSM connectors are open to release managers and administrators.")


@login_required
@require_GET
def connector_list(request):
    _reader(request)
    return render(request, "governance/itsm/connectors.html", {
        "statuses": connectors_status(), "now": timezone.now(), "may_retry": can_retry_outbox(request.user)})


@login_required
@require_POST
def outbox_message_retry(request, pk: int):
    _reader(request)
    message = get_object_or_404(OutboxMessage, pk=pk)
    try:
        outbox_retry(actor=request.user, message=message)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{message.idempotency_key} is sent again; the change's later updates follow it.")
    return redirect("itsm:connector_list")
