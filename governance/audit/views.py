"""The ledger's pages: search and export, an object's history, the checkpoint signing key."""

import csv

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models.expressions import RawSQL
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

from governance.audit import selectors, signing
from governance.audit.filters import AuditEventFilter
from governance.audit.history import readable_history
from governance.audit.ledger import (
    CANONICAL_COLUMNS,
    EVENT_FIELDS,
    GENESIS_HASH,
    HASHED_TEXTS,
    audit_record,
    canonical_event,
    event_hash,
)
from governance.audit.permissions import can_export_ledger, can_read_history, can_read_ledger
from governance.core.pagination import page_of

HISTORY_LIMIT = 100
HISTORY_SHOWN = 5  # the newest events shown open; the rest of the page's events are folded


@login_required
def audit_search(request):
    """Search the ledger by actor, object, action and time; `?format=csv` exports the result."""
    if not can_read_ledger(request.user):
        raise PermissionDenied("The audit ledger is open to auditors and administrators.")
    filterset = AuditEventFilter(request.GET or None, queryset=selectors.audit_events())
    events = filterset.qs  # invalid filters are shown as form errors and left out
    status = 200
    if request.GET.get("format") == "csv":
        if not can_export_ledger(request.user):
            raise PermissionDenied("Exporting audit evidence needs the export permission.")
        if filterset.is_valid():
            return _export_csv(request, filterset, events)
        # Leaving an invalid filter out would export more than was asked for: show the errors instead.
        status = 400
    page, query = page_of(request, events, 50, drop=("format",))
    latest = selectors.audit_checkpoints().first()
    return render(request, "governance/audit_search.html", {
        "filter": filterset, "page": page, "query": query, "checkpoint": latest,
        "can_export": can_export_ledger(request.user),
    }, status=status)


def _export_csv(request, filterset, events):
    count = events.count()
    audit_record("export", object_type="governance.auditevent", object_label="audit ledger (CSV)",
                 context={"filters": {k: v for k, v in filterset.data.items() if k not in ("format", "page")},
                          "events": count})
    # Every field the hash covers, as the very text it covers, so anyone can recompute the chain from the file.
    texts = {f"canonical_{name}": RawSQL(expression, ()) for name, expression in zip(  # noqa: S611 (constant SQL)
        EVENT_FIELDS, CANONICAL_COLUMNS, strict=True)}
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["seq", *EVENT_FIELDS, "prev_hash", "hash"])
        exported = events.order_by("seq").annotate(**texts).values_list("seq", *texts, "prev_hash", "hash")
        for row in exported.iterator(chunk_size=2000):
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="changeboard-audit.csv"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def object_history(request, object_type: str, object_id: str):
    """One object's timeline with its diffs; htmx loads it into the object's own page."""
    if not can_read_history(request.user, object_type):
        raise PermissionDenied("You may not read the history of this object.")
    events = list(selectors.object_history(object_type, object_id)[:HISTORY_LIMIT])
    template = "governance/_history.html" if request.htmx else "governance/object_history.html"
    entries = readable_history(object_type, events)
    response = render(request, template, {"recent": entries[:HISTORY_SHOWN], "earlier": entries[HISTORY_SHOWN:],
                                          "count": len(entries), "object_type": object_type, "object_id": object_id,
                                          "limit": HISTORY_LIMIT})
    # The panel and the page share a URL: a cache must not hand one out for the other.
    patch_vary_headers(response, ["HX-Request"])
    return response


# A made-up first event, hashed by the ledger's own code: the page shows its bytes and hash beside the rules, so
# an auditor can test a reimplementation against it. The label and context hold non-ASCII text (lengths count
# bytes) and the context two keys (jsonb puts the shorter first).
HASH_EXAMPLE = (1, (
    "2025-01-31T09:15:00.250000Z", "user", "7", "Riya Patel", "", "update", "cmdb.configurationitem", "42",
    "payments-api (Zürich)", '{"criticality": {"after": 1, "before": 2}}', "5f1c0d2e9a7b4c3d", "10.0.0.8",
    '{"via": "web", "reason": "ticket №42"}',
))


@login_required
def audit_public_key(request):
    seq, texts = HASH_EXAMPLE
    return render(request, "governance/audit_key.html", {
        "key": signing.public_key_document(), "checkpoint": selectors.audit_checkpoints().first(),
        "hashed_texts": HASHED_TEXTS, "genesis": GENESIS_HASH,
        "field_rows": [[name for name, _ in HASHED_TEXTS[i:i + 5]] for i in range(0, len(HASHED_TEXTS), 5)],
        "example": {"fields": zip(("seq", *EVENT_FIELDS), (str(seq), *texts), strict=True),
                    "input": GENESIS_HASH + "\n" + canonical_event(seq, texts).decode(),
                    "hash": event_hash(GENESIS_HASH, seq, texts)},
    })
