"""Evidence bundles: a period's evidence in one signed zip an auditor keeps and checks with no Changeboard code.

A worker writes the zip as a stream (stream-zip, each file deflated as it is produced), so memory stays flat
whatever the period holds; each file's SHA-256, size and rows are counted on the way and listed in manifest.json,
written last and signed with the ledger's key. The files are reproducible: the same period, scope and seed give
the same bytes (fixed entry times, sorted JSON); only manifest.json says when and from which ledger head.

What goes in is the registry PARTS below: each part names the producer module it comes from and yields its files.
"""

import csv
import hashlib
import io
import json
import logging
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.db.models.expressions import RawSQL
from django.utils import timezone
from kombu.exceptions import OperationalError
from stream_zip import ZIP_64, stream_zip

from governance.audit import signing
from governance.audit.ledger import CANONICAL_COLUMNS, EVENT_FIELDS, audit_checkpoint_create, audit_record
from governance.core import ed25519
from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.evidence import access_review, controls, exceptions, population, reconciliation, samples
from governance.evidence.period import Period
from governance.evidence.permissions import can_build_bundle, can_read_evidence
from governance.evidence.samples import SEED_MAX
from governance.models import AuditCheckpoint, AuditEvent, EvidenceBundle

logger = logging.getLogger(__name__)

FORMAT = "changeboard-evidence-bundle:v1"
# Every entry carries this time, so two builds of the same evidence are the same bytes; the build's own time is in
# the manifest.
ENTRY_TIME = datetime(2000, 1, 1, tzinfo=UTC)
ENTRY_MODE = stat.S_IFREG | 0o644
VERIFIER_DIR = Path(__file__).resolve().parent / "verifier"
VERIFIER_FILES = ("verify_bundle.py", "README.md")
LEDGER_CHUNK = 2000
BUILD_TASK = "governance.tasks.evidence_bundle_build"


def bundle_request(*, actor, period: Period, seed: int) -> EvidenceBundle:
    """Queue a bundle for the period and seed; the request is itself a ledger export event. The worker starts once
    this transaction commits."""
    if not can_build_bundle(actor):
        raise Forbidden("Building an evidence bundle needs the audit export permission.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InvalidInput(f"The seed is a whole number from 0 to {SEED_MAX}.", field="seed")
    with transaction.atomic():
        bundle = EvidenceBundle.objects.create(period_start=period.start, period_end=period.end, scope=period.scope,
                                               seed=seed, requested_by=actor)
        audit_record("export", obj=bundle, object_label=f"evidence bundle {bundle.pk}",
                     context={"period": _period_parameters(period), "seed": seed})
        transaction.on_commit(lambda: _send(bundle.pk))
    return bundle


def _send(bundle_id: int) -> None:
    # By name: the task module (governance.evidence.tasks) imports this one.
    try:
        current_app.send_task(BUILD_TASK, args=(bundle_id,))
    except OperationalError:  # the broker is down: the bundle stays queued, and says so
        logger.warning("Could not queue the build of evidence bundle %s.", bundle_id)


def bundle_path(bundle: EvidenceBundle) -> Path:
    return Path(settings.EVIDENCE_DIR) / bundle.file_name


def bundle_download(*, actor, bundle: EvidenceBundle) -> BinaryIO:
    """The ready bundle's zip, opened; each download is recorded in the ledger as an export."""
    if not can_read_evidence(actor):
        raise Forbidden("Evidence bundles are open to auditors and administrators.")
    if bundle.status != EvidenceBundle.Status.READY:
        raise Conflict(f"The bundle is {bundle.get_status_display().lower()}, not ready to download.")
    try:
        file = bundle_path(bundle).open("rb")
    except FileNotFoundError:
        raise Conflict("The bundle's file is no longer on this server.") from None
    audit_record("export", obj=bundle, object_label=f"evidence bundle {bundle.pk} (download)",
                 context={"sha256": bundle.sha256})
    return file


def bundle_build(bundle_id: int, *, again: bool = False) -> None:
    """Build a queued bundle's zip; the row ends ready with the file's size and SHA-256, or failed with the error.
    A second delivery of the task finds the bundle no longer queued and does nothing, unless it is `again`: the
    broker handing back the message of a worker that died while building, which is built anew from the start."""
    claimable = [EvidenceBundle.Status.QUEUED, *([EvidenceBundle.Status.BUILDING] if again else [])]
    if not EvidenceBundle.objects.filter(pk=bundle_id, status__in=claimable).update(
            status=EvidenceBundle.Status.BUILDING, progress=0, stage="starting"):
        return
    bundle = EvidenceBundle.objects.get(pk=bundle_id)
    directory = Path(settings.EVIDENCE_DIR)
    name = (f"changeboard-evidence-{bundle.pk}-{bundle.period_start:%Y%m%d}-{bundle.period_end:%Y%m%d}"
            f"-{bundle.scope}.zip")
    partial = directory / f".{name}.part"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        build = Build(bundle=bundle, period=Period(start=bundle.period_start, end=bundle.period_end,
                                                   scope=bundle.scope))
        digest, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as out:
                for chunk in stream_zip(_members(build)):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        finally:
            build.close()
        partial.replace(directory / name)
    except Exception as exc:
        logger.exception("Evidence bundle %s failed", bundle_id)
        partial.unlink(missing_ok=True)
        EvidenceBundle.objects.filter(pk=bundle_id).update(
            status=EvidenceBundle.Status.FAILED, stage="", error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now())
        return
    EvidenceBundle.objects.filter(pk=bundle_id).update(
        status=EvidenceBundle.Status.READY, progress=100, stage="", file_name=name, size_bytes=size,
        sha256=digest.hexdigest(), ledger_head_seq=build.head_seq, finished_at=timezone.now())


# --- what a build writes ---------------------------------------------------------------------------------------------

@dataclass
class BundleFile:
    """One file of the bundle: its name, the query and parameters that produced it, and its bytes as they come.
    `rows` is counted while the bytes stream, by the helpers below."""

    name: str
    query: str
    parameters: dict
    chunks: Iterable[bytes] = ()
    rows: int | None = None


@dataclass(frozen=True)
class Analysis:
    """What one walk of the population gives every part that reads it: the rows, spooled to a temporary file a
    JSON document a line (memory holds one chunk however large the period), the exceptions found and the strata
    the sample is drawn from."""

    rows: BinaryIO
    exceptions: list
    strata: dict[samples.Stratum, list[str]]


@dataclass
class Build:
    """One build under way: the bundle, its period, and what the written files turned out to be."""

    bundle: EvidenceBundle
    period: Period
    written: list[dict] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = ""
    analysed: Analysis | None = None

    def analysis(self) -> Analysis:
        """The population walked once, however many parts read it: it is the costliest read of a build."""
        if self.analysed is None:
            finder = exceptions.ExceptionFinder(self.period)
            spool = tempfile.TemporaryFile(dir=settings.EVIDENCE_DIR)  # noqa: SIM115 (closed by close())

            def rows() -> Iterator[population.PopulationRow]:
                for chunk in population.matched_chunks(population.production_deployments(self.period)):
                    finder.add(chunk)
                    for record in chunk:
                        row = population.population_row(record)
                        spool.write(_json(population.row_dict(row)) + b"\n")
                        yield row

            strata = samples.sample_strata(rows())
            self.analysed = Analysis(rows=spool, exceptions=finder.found(), strata=strata)
        return self.analysed

    def population_rows(self) -> Iterator[dict]:
        spool = self.analysis().rows
        spool.seek(0)
        for line in spool:
            yield json.loads(line)

    def exceptions(self) -> list:
        return self.analysis().exceptions

    def close(self) -> None:
        if self.analysed is not None:
            self.analysed.rows.close()


@dataclass(frozen=True)
class Part:
    """A part of the bundle: the producer it comes from and the files it yields."""

    name: str
    files: Callable[[Build], Iterator[BundleFile]]


def _members(build: Build) -> Iterator[tuple]:
    """The zip's entries in order, each file measured as it streams; the manifest and its signature come last."""
    build.head_seq, build.head_hash = (AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
                                       or (0, ""))
    for part in PARTS:
        _progress(build.bundle, _part_progress(part.name, 0, 1), f"writing the {part.name}")
        for bundle_file in part.files(build):
            yield bundle_file.name, ENTRY_TIME, ENTRY_MODE, ZIP_64, _measured(build, bundle_file)
    _progress(build.bundle, 97, "signing the manifest")
    manifest = _manifest(build)
    yield "manifest.json", ENTRY_TIME, ENTRY_MODE, ZIP_64, (manifest,)
    yield "manifest.sig", ENTRY_TIME, ENTRY_MODE, ZIP_64, (signing.sign(manifest).encode(),)


def _measured(build: Build, bundle_file: BundleFile) -> Iterator[bytes]:
    digest, size = hashlib.sha256(), 0
    for chunk in bundle_file.chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    build.written.append({"name": bundle_file.name, "sha256": digest.hexdigest(), "size": size,
                          "rows": bundle_file.rows, "query": bundle_file.query,
                          "parameters": bundle_file.parameters})


def _progress(bundle: EvidenceBundle, progress: int, stage: str) -> None:
    EvidenceBundle.objects.filter(pk=bundle.pk).update(progress=progress, stage=stage)


def _manifest(build: Build) -> bytes:
    bundle = build.bundle
    document = {
        "format": FORMAT,
        "bundle": bundle.pk,
        "period": _period_parameters(build.period),
        "seed": bundle.seed,
        "requested_by": bundle.requested_by.get_username(),
        "requested_at": bundle.requested_at.astimezone(UTC).isoformat(),
        "built_at": timezone.now().astimezone(UTC).isoformat(),
        "ledger_head": {"seq": build.head_seq, "hash": build.head_hash},
        "key_id": ed25519.key_id(signing.public_key()),
        "files": sorted(build.written, key=lambda entry: entry["name"]),
    }
    return _json(document, indent=2)


def _period_parameters(period: Period) -> dict:
    return {"start": period.start.astimezone(UTC).isoformat(), "end": period.end.astimezone(UTC).isoformat(),
            "scope": str(period.scope)}


# --- writing rows as CSV and JSON, counting them ---------------------------------------------------------------------

def _json(value, *, indent: int | None = None) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=indent, default=_json_value).encode()


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _cell(value) -> str:
    """A CSV cell: text as is, times in ISO 8601, nested values as compact JSON, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_file(name: str, columns: Iterable[str], rows: Callable[[], Iterable[dict]], *, query: str,
             parameters: dict) -> BundleFile:
    """A CSV with a header of `columns`, one line per row, rows counted (the header aside)."""
    columns = tuple(columns)
    bundle_file = BundleFile(name=name, query=query, parameters=parameters, rows=0)

    def chunks() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows():
            writer.writerow([_cell(row.get(column)) for column in columns])
            bundle_file.rows = (bundle_file.rows or 0) + 1
            if buffer.tell() > 65536:
                yield _drain(buffer)
        yield _drain(buffer)

    bundle_file.chunks = chunks()
    return bundle_file


def json_list_file(name: str, rows: Callable[[], Iterable[dict]], *, query: str, parameters: dict) -> BundleFile:
    """A JSON array written one item a line as the rows come, rows counted."""
    bundle_file = BundleFile(name=name, query=query, parameters=parameters, rows=0)

    def chunks() -> Iterator[bytes]:
        separator = b"[\n"
        for row in rows():
            yield separator + _json(row)
            separator = b",\n"
            bundle_file.rows = (bundle_file.rows or 0) + 1
        yield b"[]\n" if separator == b"[\n" else b"\n]\n"

    bundle_file.chunks = chunks()
    return bundle_file


def json_file(name: str, value, *, rows: int | None, query: str, parameters: dict) -> BundleFile:
    return BundleFile(name=name, query=query, parameters=parameters, chunks=(_json(value, indent=2) + b"\n",),
                      rows=rows)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


def table_files(stem: str, columns: Iterable[str], rows: Callable[[], Iterable[dict]], *, query: str,
                parameters: dict) -> Iterator[BundleFile]:
    """The same rows as <stem>.csv and <stem>.json; `rows` is called once for each, so nothing is held."""
    columns = tuple(columns)
    yield csv_file(f"{stem}.csv", columns, rows, query=query, parameters=parameters)
    yield json_list_file(f"{stem}.json", rows, query=query, parameters=parameters)


def _dataclass_dicts(items: Iterable) -> Iterator[dict]:
    for item in items:
        yield asdict(item)


# --- the parts ----------------------------------------------------------------------------------------------------

def population_files(build: Build) -> Iterator[BundleFile]:
    period = build.period
    yield from table_files(
        "population", population.COLUMNS, build.population_rows,
        query="governance.evidence.population.population(period): production deployments started in the period, "
              "each matched to its change, approvals and allowing gate check",
        parameters=_period_parameters(period))


def exceptions_files(build: Build) -> Iterator[BundleFile]:
    period = build.period
    yield from table_files(
        "exceptions", ("kind", "key", "record", "reason", "evidence"),
        lambda: _dataclass_dicts(build.exceptions()),
        query="governance.evidence.exceptions.period_exceptions(period)", parameters=_period_parameters(period))


def reconciliation_files(build: Build) -> Iterator[BundleFile]:
    period = build.period
    result = reconciliation.reconcile(period)
    yield json_file("reconciliation.json", {"counts": result.counts, "unpaired": result.unpaired},
                    rows=len(result.unpaired), parameters=_period_parameters(period),
                    query="governance.evidence.reconciliation.reconcile(period): allowing gate checks, reported "
                          "deployments and approved changes counted, and each record with no partner")


def controls_files(build: Build) -> Iterator[BundleFile]:
    period = build.period
    yield from table_files(
        "controls", ("control", "name", "criteria", "passed", "tested", "exception_keys"),
        lambda: _dataclass_dicts(controls.control_tests(period, exceptions=build.exceptions())),
        query="governance.evidence.controls.control_tests(period)", parameters=_period_parameters(period))


def access_review_files(build: Build) -> Iterator[BundleFile]:
    period = build.period
    yield from table_files(
        "access_review", access_review.ACCESS_COLUMNS, lambda: _dataclass_dicts(access_review.access_review(period)),
        query="governance.evidence.access_review.access_review(period): roles and deploying tokens held in the "
              "period, reconstructed from the ledger", parameters=_period_parameters(period))


def sample_files(build: Build) -> Iterator[BundleFile]:
    """The sample drawn from the population with the bundle's seed, and each sampled change's evidence as PDF."""
    period, seed, strata = build.period, build.bundle.seed, build.analysis().strata
    stratum_of = {number: stratum for stratum, numbers in strata.items() for number in numbers}
    drawn = samples.sample_from_strata(strata, seed)
    size, rule = samples.sample_size(len(stratum_of))
    sampled = [{"position": position, "change_number": number, "risk_level": stratum_of[number][0],
                "change_type": stratum_of[number][1]} for position, number in enumerate(drawn, start=1)]
    parameters = {**_period_parameters(period), "seed": seed}
    query = "governance.evidence.samples.sample_draw(population(period), seed): stratified by risk and change type"
    yield csv_file("sample.csv", ("position", "change_number", "risk_level", "change_type"), lambda: sampled,
                   query=query, parameters=parameters)
    yield json_file("sample.json", {"seed": seed, "rule": rule, "size": size, "population_size": len(stratum_of),
                                    "changes": sampled},
                    rows=len(sampled), query=query, parameters=parameters)
    for index, number in enumerate(drawn):
        _progress(build.bundle, _part_progress("sample", index, len(drawn)),
                  f"writing the evidence of {number} ({index + 1} of {len(drawn)})")
        yield BundleFile(name=f"changes/{number}.pdf", chunks=(samples.change_evidence_pdf(number),),
                         query="governance.evidence.samples.change_evidence_pdf(number)",
                         parameters={"number": number})


def _part_progress(name: str, done: int, total: int) -> int:
    """The per cent done when a part is `done` of `total` through: each part has an equal share of 95."""
    index = next(index for index, part in enumerate(PARTS) if part.name == name)
    return (index * total + min(done, total)) * 95 // (len(PARTS) * max(total, 1))


def ledger_files(build: Build) -> Iterator[BundleFile]:
    """The events sealed in the period with the signed checkpoints that anchor them: the events run from just after
    the last checkpoint before the period's first event to the first checkpoint at or after its last, so the
    chain of what is included is tied to signatures at both ends."""
    period = build.period
    bounds = AuditEvent.objects.filter(sealed_at__gte=period.start, sealed_at__lt=period.end).aggregate(
        first=Min("seq"), last=Max("seq"))
    checkpoints: list[AuditCheckpoint] = []
    first = last = None
    if bounds["first"] is not None:
        anchor = AuditCheckpoint.objects.filter(seq__lt=bounds["first"]).order_by("-seq", "-id").first()
        covering = (AuditCheckpoint.objects.filter(seq__gte=bounds["last"]).order_by("seq", "id").first()
                    or audit_checkpoint_create())
        first = anchor.seq + 1 if anchor else 1
        last = covering.seq if covering else bounds["last"]
        checkpoints = [*([anchor] if anchor else []),
                       *AuditCheckpoint.objects.filter(seq__gte=first, seq__lte=last).order_by("seq", "id")]
    parameters = {**_period_parameters(period), "period_first_seq": bounds["first"],
                  "period_last_seq": bounds["last"], "first_seq": first, "last_seq": last}
    events = BundleFile(name="ledger/events.jsonl", rows=0, parameters=parameters,
                        query="governance_auditevent where first_seq <= seq <= last_seq, in seq order: the events "
                              "sealed in the period (period_first_seq to period_last_seq) and those between them "
                              "and the checkpoints that anchor them; each field as the text its hash covers")
    events.chunks = _event_lines(build, events, first, last)
    yield events
    yield json_file("ledger/checkpoints.json", {"checkpoints": [_checkpoint(c) for c in checkpoints]},
                    rows=len(checkpoints), parameters=parameters,
                    query="governance_auditcheckpoint: the last before first_seq, and those from first_seq to "
                          "last_seq")


def _event_lines(build: Build, bundle_file: BundleFile, first: int | None, last: int | None) -> Iterator[bytes]:
    if first is None or last is None:
        return
    texts = {f"text_{name}": RawSQL(expression, ())  # noqa: S611 (constant SQL)
             for name, expression in zip(EVENT_FIELDS, CANONICAL_COLUMNS, strict=True)}
    events = (AuditEvent.objects.filter(seq__gte=first, seq__lte=last).order_by("seq").annotate(**texts)
              .values_list("seq", "sealed_at", "prev_hash", "hash", *texts))
    lines = []
    for seq, sealed_at, prev_hash, digest, *values in events.iterator(chunk_size=LEDGER_CHUNK):
        line = {"seq": seq, "sealed_at": sealed_at.astimezone(UTC).isoformat(), "prev_hash": prev_hash,
                "hash": digest, **dict(zip(EVENT_FIELDS, values, strict=True))}
        lines.append(json.dumps(line, ensure_ascii=False))
        bundle_file.rows = (bundle_file.rows or 0) + 1
        if len(lines) == LEDGER_CHUNK:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
            written = seq - first + 1
            if written % (LEDGER_CHUNK * 25) == 0:  # every 50,000 events: a million take about a minute and a half
                _progress(build.bundle, _part_progress("ledger", written, last - first + 1),
                          f"writing the ledger events ({written:,} of {last - first + 1:,})")
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def _checkpoint(checkpoint: AuditCheckpoint) -> dict:
    return {"seq": checkpoint.seq, "head_hash": checkpoint.head_hash, "key_id": checkpoint.key_id,
            "created_at": checkpoint.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "signature": checkpoint.signature}


def verifier_files(build: Build) -> Iterator[BundleFile]:
    """The offline verifier, copied verbatim from governance/evidence/verifier, and the ledger's public key."""
    for name in VERIFIER_FILES:
        yield BundleFile(name=f"verifier/{name}", chunks=((VERIFIER_DIR / name).read_bytes(),),
                         query=f"governance/evidence/verifier/{name}", parameters={})
    yield BundleFile(name="verifier/public_key.pem", chunks=(ed25519.public_key_pem(signing.public_key()).encode(),),
                     query="the ledger's checkpoint signing key, public half", parameters={})


# Each part of the bundle, in the order written. A part lands by adding its line here.
PARTS: tuple[Part, ...] = (
    Part("population", population_files),
    Part("reconciliation", reconciliation_files),
    Part("exceptions", exceptions_files),
    Part("control tests", controls_files),
    Part("access review", access_review_files),
    Part("sample", sample_files),
    Part("ledger", ledger_files),
    Part("verifier", verifier_files),
)
