"""Samples of a period's changes for the auditor to test one by one, sized by a stated rule and reproducible from a
seed the auditor records.

What is sampled: the changes behind the period's production deployments (a change deployed three times is one
item; a deployment with no change is an exception, reported as such, never sampled).

How many (the rule an auditor can quote, the common ITGC guidance by population size):
    25 changes or fewer: every one; 26 to 50: 25; 51 to 250: 30; 251 to 1,000: 40; more than 1,000: 60.

How they are picked, so that anyone can draw the same sample again:
1. the changes are put into strata by (risk level, change type), the strata ordered by that pair of words;
2. the sample is shared between the strata in proportion to their sizes, whole numbers by the largest remainder
   (ties to the earlier stratum); then every stratum left with none takes one from the stratum holding most
   (ties to the earlier), as long as the sample has one for each;
3. one `random.Random(seed)` draws each stratum's share in turn, with `sample()` over its change numbers in
   sorted order. The sample lists the changes in that order.
"""

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import Http404
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from cmdb.models import ConfigurationItem
from governance.audit.history import Entry, readable_history
from governance.audit.selectors import audit_events
from governance.core.errors import Forbidden, InvalidInput
from governance.evidence.period import Period
from governance.evidence.permissions import can_build_bundle
from governance.evidence.population import PopulationRow, population
from governance.models import (
    Approval,
    ApprovalRequirement,
    AuditSample,
    ChangeRequest,
    ChangeStatusChange,
    DeploymentCheck,
)
from releases.models import Deployment, RolloutStep

# (largest population, sample size), in order; above the last, LARGE_SAMPLE.
SIZE_TABLE = ((25, None), (50, 25), (250, 30), (1000, 40))
LARGE_SAMPLE = 60
SIZE_RULE = "25 or fewer: all; 26-50: 25; 51-250: 30; 251-1,000: 40; over 1,000: 60"
# A seed is kept in a bigint column.
SEED_MAX = 2**63 - 1

Stratum = tuple[str, str]


def sample_size(population_size: int) -> tuple[int, str]:
    """How many changes to sample from a population of `population_size`, and the rule that says so, in words."""
    if population_size < 0:
        raise ValueError("a population has no negative size")
    size = next((all_or_n if all_or_n is not None else population_size
                 for largest, all_or_n in SIZE_TABLE if population_size <= largest), LARGE_SAMPLE)
    noun = "change" if population_size == 1 else "changes"
    return size, f"{population_size:,} {noun} in the population, so {size:,} by the ITGC table ({SIZE_RULE})"


def sample_draw(rows: Iterable[PopulationRow], seed: int) -> list[str]:
    """The change numbers sampled from the population `rows` with `seed`, in the order drawn."""
    return sample_from_strata(sample_strata(rows), seed)


@transaction.atomic
def sample_record(*, actor, period: Period, seed: int) -> AuditSample:
    """Draw a sample of `period`'s changes with `seed` and keep it; the ledger records it by the table's trigger."""
    if not can_build_bundle(actor):
        raise Forbidden("Drawing a sample is an export of evidence: it needs the export permission.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InvalidInput(f"The seed is a whole number from 0 to {SEED_MAX}.", field="seed")
    strata = sample_strata(population(period))
    changes = sum(len(numbers) for numbers in strata.values())
    return AuditSample.objects.create(
        period_start=period.start, period_end=period.end, scope=period.scope, seed=seed,
        rule=sample_size(changes)[1], population_size=changes, change_numbers=sample_from_strata(strata, seed),
        drawn_by=actor)


def sample_strata(rows: Iterable[PopulationRow]) -> dict[Stratum, list[str]]:
    """The changes of the population `rows` to draw from: each (risk level, change type) with its change numbers,
    both sorted; a change counted once."""
    seen: dict[str, Stratum] = {}
    for row in rows:
        if row.change_number and row.change_number not in seen:
            seen[row.change_number] = (row.risk_level, row.change_type)
    strata: dict[Stratum, list[str]] = {}
    for number in sorted(seen):
        strata.setdefault(seen[number], []).append(number)
    return dict(sorted(strata.items()))


def sample_from_strata(strata: dict[Stratum, list[str]], seed: int) -> list[str]:
    """The change numbers sampled from `strata` with `seed`, in the order drawn."""
    size, _ = sample_size(sum(len(changes) for changes in strata.values()))
    shares = _allocation({stratum: len(changes) for stratum, changes in strata.items()}, size)
    chance = random.Random(seed)  # noqa: S311 (reproducibility is the point, not secrecy)
    return [number for stratum, changes in strata.items() for number in chance.sample(changes, shares[stratum])]


def _allocation(sizes: dict[Stratum, int], size: int) -> dict[Stratum, int]:
    """`size` shared among the strata in proportion to `sizes` (largest remainder), each given one where it can."""
    total = sum(sizes.values())
    if total == 0:
        return {stratum: 0 for stratum in sizes}
    quotas = {stratum: Fraction(size * count, total) for stratum, count in sizes.items()}
    shares = {stratum: int(quota) for stratum, quota in quotas.items()}
    order = list(sizes)  # already sorted: ties go to the earlier stratum
    by_remainder = sorted(order, key=lambda stratum: (-(quotas[stratum] - shares[stratum]), order.index(stratum)))
    for stratum in by_remainder[:size - sum(shares.values())]:
        shares[stratum] += 1
    if size >= len(sizes):
        for stratum in order:
            if shares[stratum] == 0:
                donor = max(order, key=lambda s: (shares[s], -order.index(s)))
                shares[donor] -= 1
                shares[stratum] = 1
    return shares


# --- one sampled change's evidence: its page, and the same page as a PDF -------------------------------------------

CHANGE_NUMBER = re.compile(r"CHG[0-9]{1,9}")
# The ledger's kinds of record that make up a change's own history (its deployments' facts are shown from their
# rows: the ledger names a deployment's build by the build's __str__, a query per build).
CHANGE_TYPE, APPROVAL_TYPE = "governance.changerequest", "governance.approval"


@dataclass(frozen=True)
class ChangeEvidence:
    """Everything an auditor tests of one change, read in a fixed number of queries however long its history."""

    change: ChangeRequest
    cis: list[ConfigurationItem]
    requirements: list[ApprovalRequirement]
    approvals: list[Approval]
    status_changes: list[ChangeStatusChange]
    checks: list[DeploymentCheck]
    deployments: list[Deployment]
    events: list[Entry]

    @property
    def factor_total(self) -> int:
        return sum(factor.get("points", 0) for factor in self.change.risk_factors)


def change_evidence(number: str) -> ChangeEvidence:
    """The evidence of change `number`; Http404 when there is no such change."""
    if not CHANGE_NUMBER.fullmatch(number):
        raise Http404("A change number reads CHG and digits.")
    change = (ChangeRequest.objects.select_related("requester", "implementer", "environment", "template")
              .filter(number=number).first())
    if change is None:
        raise Http404(f"No change {number[:20]}.")
    approvals = list(Approval.objects.filter(change=change).select_related("approver", "role")
                     .order_by("created_at", "id"))
    deployments = list(
        Deployment.objects.filter(change_number=change.number)
        .select_related("service", "environment", "artifact", "reported_by")
        .prefetch_related("artifact__scans", Prefetch("steps", queryset=RolloutStep.objects.order_by("sequence")))
        .order_by("started_at", "number"))
    return ChangeEvidence(
        change=change,
        cis=list(change.affected_cis.select_related("environment").order_by("name")),
        requirements=list(ApprovalRequirement.objects.filter(change=change).select_related("role")
                          .order_by("-revision", "role__name")),
        approvals=approvals,
        status_changes=list(change.status_changes.select_related("actor").order_by("at", "id")),
        checks=list(DeploymentCheck.objects.filter(change=change)
                    .select_related("service", "environment", "artifact", "asked_by").order_by("asked_at", "id")),
        deployments=deployments,
        events=_ledger(change, approvals),
    )


def _ledger(change: ChangeRequest, approvals: list[Approval]) -> list[Entry]:
    """The ledger's events of the change and its approvals, oldest first, made readable."""
    ids = {CHANGE_TYPE: [str(change.pk)], APPROVAL_TYPE: [str(a.pk) for a in approvals]}
    about = Q()
    for object_type, object_ids in ids.items():
        about |= Q(object_type=object_type, object_id__in=object_ids)
    events = list(audit_events().filter(about).order_by("seq"))
    entries = [entry for object_type in ids
               for entry in readable_history(object_type, [e for e in events if e.object_type == object_type])]
    return sorted(entries, key=lambda entry: entry.event.seq)


def change_evidence_html(evidence: ChangeEvidence, *, printed: bool = False, request=None) -> str:
    """The evidence page: in the site's layout for the browser, or `printed` alone on its pages for the PDF."""
    return render_to_string("governance/evidence/change_evidence.html", {
        "evidence": evidence, "change": evidence.change, "printed": printed,
        "layout": "governance/evidence/printed.html" if printed else "base.html",
    }, request=request)


def change_evidence_pdf(number: str) -> bytes:
    """Change `number`'s evidence page as a PDF, drawn from the same template with nothing fetched from outside."""
    html = change_evidence_html(change_evidence(number), printed=True)
    return HTML(string=html, base_url=STATIC_BASE, url_fetcher=StaticOnly(fail_on_errors=True)).write_pdf()


# The PDF's relative links resolve against this made-up origin, which only StaticOnly answers.
STATIC_BASE = "https://changeboard.invalid/"


class StaticOnly(URLFetcher):
    """Fetches the app's own static files for WeasyPrint and refuses every other address: a PDF of evidence must
    not depend on, or reveal itself to, anything outside."""

    def fetch(self, url, headers=None):
        prefix = "/" + urlsplit(settings.STATIC_URL).path.lstrip("/")
        path = unquote(urlsplit(url).path)
        if url.startswith(STATIC_BASE) and path.startswith(prefix) and ".." not in path:
            body = _static_file(path[len(prefix):])
            if body is not None:
                kind = "text/css" if path.endswith(".css") else "application/octet-stream"
                return URLFetcherResponse(url, body, {"Content-Type": kind})
        raise ValueError(f"Evidence PDFs fetch nothing but the app's static files, not {url[:100]}")


def _static_file(name: str) -> bytes | None:
    """A static file as collected (its hashed name in production), else as found in the source tree."""
    if staticfiles_storage.exists(name):
        with staticfiles_storage.open(name) as file:
            return file.read()
    found = finders.find(name)
    if not isinstance(found, str):
        return None
    with open(found, "rb") as file:
        return file.read()
