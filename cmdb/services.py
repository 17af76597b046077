"""CMDB writes that are more than plain CRUD: importing an inventory from CSV or JSON."""

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models.functions import Lower

from cmdb.api.serializers import ConfigurationItemSerializer, RelationshipSerializer
from cmdb.models import ConfigurationItem, Relationship
from cmdb.permissions import can_change_ci, can_change_ci_compliance, can_import
from governance.core.actors import ActingUser
from governance.core.api_errors import flatten_errors
from governance.core.errors import DomainError, Forbidden, InvalidInput
from governance.core.fields import field_label
from governance.core.inputs import JSONRefused, json_parsed, text_fault

CI_LIST_FIELDS = {"tags"}
CI_JSON_FIELDS = {"attributes", "github_environments"}


@dataclass(frozen=True)
class ImportRecord:
    """One CI or relationship read from a file, with where it came from for error messages."""

    kind: str  # "ci" or "relationship"
    source: str  # file name
    line: int | None  # CSV line, counting the header as line 1
    index: int | None  # position in a JSON list
    data: dict[str, Any]

    @property
    def location(self) -> str:
        if self.line is not None:
            return f"{self.source} line {self.line}"
        return f"{self.source} {'cis' if self.kind == 'ci' else 'relationships'}[{self.index}]"


@dataclass
class ImportResult:
    cis_created: int = 0
    cis_updated: int = 0
    cis_unchanged: int = 0
    relationships_created: int = 0
    relationships_existing: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def ci_change_refusal(actor: ActingUser, ci: ConfigurationItem, values: dict[str, Any]) -> DomainError | None:
    """Why `actor` may not change `ci` to `values`, if they may not. A team's maintainers change their CIs but not
    the compliance flags and tier, which compliance officers and admins change, saying why."""
    compliance = ci.compliance_changed(values)
    others = [name for name, value in values.items()
              if name not in (*compliance, "compliance_reason") and value != getattr(ci, name)]
    compliance_only = bool(compliance) and not others
    if not can_change_ci(actor, ci) and not (compliance_only and can_change_ci_compliance(actor)):
        return Forbidden("You may not change this CI.")
    if not compliance:
        if values.get("compliance_reason", ci.compliance_reason) != ci.compliance_reason:
            return InvalidInput("A reason is given with a change of the compliance flags or tier, not alone.",
                                field="compliance_reason")
        return None
    if not can_change_ci_compliance(actor):
        label = field_label(ConfigurationItem, compliance[0])
        return Forbidden(f"Only a compliance officer or an admin changes the {label} of a CI"
                         f"{' under compliance control' if compliance[0] == 'name' else ''}.",
                         field=compliance[0], code="compliance_controlled")
    if not str(values.get("compliance_reason") or "").strip():
        return InvalidInput("Say why the compliance flags or tier change: the ledger keeps the reason.",
                            field="compliance_reason")
    return None


def ci_compliance_set(*, actor: ActingUser, ci: ConfigurationItem, values: dict[str, Any]) -> ConfigurationItem:
    """A compliance officer's or an admin's change of a CI's flags and tier, with its reason."""
    with transaction.atomic():
        ci = ConfigurationItem.objects.select_for_update().get(pk=ci.pk)
        refusal = ci_change_refusal(actor, ci, values)
        if refusal is not None:
            raise refusal
        changed = ci.compliance_changed(values)
        if changed:
            for name in (*changed, "compliance_reason"):
                setattr(ci, name, values[name])
            ci.save(update_fields=[*changed, "compliance_reason", "updated_at"])
    return ci


def inventory_parse(filename: str, content: bytes | str) -> list[ImportRecord]:
    """Read a JSON document ({"cis": [...], "relationships": [...]}) or a CSV of CIs or of relationships."""
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{filename}: not UTF-8 text (byte {exc.start + 1} of the file).", field="file") from None
    if filename.lower().endswith(".json") or text.lstrip().startswith("{"):
        return _parse_json(filename, text)
    return _parse_csv(filename, text)


def _parse_json(filename: str, text: str) -> list[ImportRecord]:
    try:
        document = json_parsed(text)
    except JSONRefused as refusal:
        where = f" line {refusal.line}" if refusal.line else f" at {refusal.path}" if refusal.path else ""
        raise InvalidInput(f"{filename}{where}: {refusal.message}", field="file", code=refusal.code) from None
    return inventory_from_document(filename, document)


def inventory_from_document(source: str, document: Any) -> list[ImportRecord]:
    """Records from an already decoded JSON document: {"cis": [...], "relationships": [...]}."""
    if not isinstance(document, dict) or not document or not set(document) <= {"cis", "relationships"}:
        raise InvalidInput(f'{source}: expected an object with "cis" and/or "relationships" lists.', field="file")
    records = []
    for key, kind in (("cis", "ci"), ("relationships", "relationship")):
        items = document.get(key, [])
        if not isinstance(items, list):
            raise InvalidInput(f'{source}: "{key}" must be a list.', field=key)
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInput(f"{source} {key}[{index}]: each entry must be an object.", field=key)
            records.append(ImportRecord(kind, source, None, index, item))
    return records


def _parse_csv(filename: str, text: str) -> list[ImportRecord]:
    fault = text_fault(text)  # one look at the whole file: no cell of it is then looked up or stored with one
    if fault:
        raise InvalidInput(f"{filename}: {fault.message}", field="file", code=fault.code)
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _csv_records(filename, reader)
    except csv.Error as exc:
        raise InvalidInput(f"{filename} line {reader.reader.line_num}: not valid CSV ({exc}).", field="file") from None


def _csv_records(filename: str, reader: csv.DictReader) -> list[ImportRecord]:
    header = {name.strip() for name in reader.fieldnames or []}
    if {"source", "target", "type"} <= header:
        kind = "relationship"
    elif {"name", "type", "owner_team"} <= header:
        kind = "ci"
    else:
        raise InvalidInput(
            f"{filename} line 1: the header must hold name,type,owner_team (CIs) or source,target,type "
            "(relationships).",
            field="file",
        )
    records = []
    for row in reader:
        data = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        records.append(ImportRecord(kind, filename, reader.line_num, None, data))
    return records


def _ci_data_from_csv(record: ImportRecord) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """CSV cells are strings: split tags, parse attributes, drop empty optional cells."""
    data: dict[str, Any] = {}
    errors = []
    for key, value in record.data.items():
        if value == "" and key not in ("name", "type", "owner_team"):
            continue
        if key in CI_LIST_FIELDS:
            data[key] = [tag.strip() for tag in value.replace(";", ",").split(",") if tag.strip()]
        elif key in CI_JSON_FIELDS:
            try:
                data[key] = json_parsed(value)
            except JSONRefused:
                errors.append({"code": "invalid", "field": key, "message": "Not valid JSON."})
        else:
            data[key] = value
    return data, errors


def _located(record: ImportRecord, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**error, "message": f"{record.location}: {error['field'] or 'row'}: {error['message']}",
         "file": record.source, "line": record.line, "index": record.index}
        for error in errors
    ]


def inventory_import(*, actor: ActingUser, records: list[ImportRecord]) -> ImportResult:
    """Create or update CIs by name and add missing relationships, all or nothing.

    Idempotent: importing the same file twice changes nothing the second time. Every error of every
    record is collected; if there is one, the transaction is rolled back and InvalidInput lists them.
    """
    if not can_import(actor):
        raise Forbidden("Importing into the CMDB needs permission to add and change CIs and relationships.")
    result = ImportResult()
    ci_records = [r for r in records if r.kind == "ci"]
    rel_records = [r for r in records if r.kind == "relationship"]
    with transaction.atomic():
        names = {str(r.data.get("name", "")).lower() for r in ci_records}
        existing = {
            ci.lname: ci
            for ci in ConfigurationItem.objects.annotate(lname=Lower("name")).filter(lname__in=names)
        }
        seen: set[str] = set()
        for record in ci_records:
            _import_ci(record, existing, seen, result, actor=actor)
        for record in rel_records:
            _import_relationship(record, result)
        if result.errors:
            raise InvalidInput(
                f"Nothing was imported: {len(result.errors)} error(s).", field="file", details=result.errors
            )
    return result


def _import_ci(record: ImportRecord, existing: dict, seen: set[str], result: ImportResult, *,
               actor: ActingUser) -> None:
    data, errors = _ci_data_from_csv(record) if record.line is not None else (record.data, [])
    key = str(data.get("name", "")).lower()
    if key and key in seen:
        errors.append({"code": "duplicate", "field": "name", "message": "This CI appears earlier in the import."})
    seen.add(key)
    instance = existing.get(key)
    if errors:
        result.errors.extend(_located(record, errors))
        return
    serializer = ConfigurationItemSerializer(instance, data=data, partial=instance is not None)
    if not serializer.is_valid():
        result.errors.extend(_located(record, flatten_errors(serializer.errors)))
        return
    if instance is None:
        existing[key] = serializer.save()
        result.cis_created += 1
    elif any(getattr(instance, name) != value for name, value in serializer.validated_data.items()):
        values = dict(serializer.validated_data)
        if instance.compliance_changed(values):  # an import names its file as the reason unless a row gives one
            values.setdefault("compliance_reason", f"imported from {record.source}")
        refusal = ci_change_refusal(actor, instance, values)
        if refusal is not None:
            result.errors.extend(_located(record, refusal.as_errors()))
            return
        serializer.save(compliance_reason=values.get("compliance_reason", instance.compliance_reason))
        result.cis_updated += 1
    else:
        result.cis_unchanged += 1


def _import_relationship(record: ImportRecord, result: ImportResult) -> None:
    data = record.data
    match = Relationship.objects.filter(
        source__name__iexact=str(data.get("source", "")),
        target__name__iexact=str(data.get("target", "")),
        rel_type=data.get("type"),
    )
    if match.exists():
        result.relationships_existing += 1
        return
    serializer = RelationshipSerializer(data=data)
    if not serializer.is_valid():
        result.errors.extend(_located(record, flatten_errors(serializer.errors)))
        return
    serializer.save()
    result.relationships_created += 1
