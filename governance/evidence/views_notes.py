"""The auditor's notes on one exception, as a fragment the auditor's home loads with htmx: the notes so far and,
for an auditor, the form adding one (which answers with the fragment again)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.evidence.notes import auditor_note_add, exception_key_refusal, notes_for
from governance.evidence.permissions import can_note, can_read_evidence


@login_required
@require_http_methods(["GET", "POST"])
def exception_notes(request, key: str):
    if not can_read_evidence(request.user):
        raise PermissionDenied("The evidence is open to auditors and administrators.")
    if exception_key_refusal(key) is not None:
        raise Http404("No such exception.")
    error, text, status = "", "", 200
    if request.method == "POST":
        text = request.POST.get("text", "")
        try:
            auditor_note_add(actor=request.user, exception_key=key, text=text)
        except DomainError as exc:
            refuse_if_forbidden(exc)
            error, status = exc.message, 400
        else:
            text = ""
    return render(request, "governance/evidence/_notes.html",
                  {"key": key, "notes": notes_for([key])[key], "may_note": can_note(request.user),
                   "error": error, "text": text}, status=status)
