"""An object's ledger history as a person reads it: each column by its field's name, ids as the names of what they
point to, choices by their labels, times in UTC, and the noise of every write (the row's own id and timestamps,
empty fields of a new row) left out. The ledger itself keeps every column as it was written; the audit search and
its export show that.

Names are looked up once per kind of object, whatever the length of the history: one query for the people, one
for the CIs, one for the environments...
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.text import capfirst

from cmdb.models import ConfigurationItem
from governance.models import AuditEvent

EMPTY = "—"
# Columns holding ids of another model without a foreign key: (model label, column) -> what the ids point to.
ID_ARRAYS: dict[tuple[str, str], type[models.Model]] = {
    ("governance.changerequest", "impacted_ci_ids"): ConfigurationItem,
}
# Columns holding a JSON object keyed by ids of another model.
ID_KEYS: dict[tuple[str, str], type[models.Model]] = {
    ("governance.changerequest", "compliance_at_submission"): ConfigurationItem,
}
# Where a field's own name says too little.
LABELS: dict[tuple[str, str], str] = {
    ("governance.changerequest", "impacted_ci_ids"): "Blast radius",
}
# Written with every change of the row, or already in the event's header.
NOISE = {"id", "updated_at"}
UNSET: tuple[Any, ...] = (None, "", [], {})


@dataclass
class Row:
    label: str
    before: str
    after: str


@dataclass
class Entry:
    """One event with its rows, ready to show."""

    event: AuditEvent
    rows: list[Row] = field(default_factory=list)

    @property
    def columns(self) -> str:
        """Which values the rows have: both, or only the after of a creation, the before of a deletion."""
        return {"create": "after", "delete": "before"}.get(self.event.action, "both")


def readable_history(object_type: str, events: list[AuditEvent]) -> list[Entry]:
    """`events` of one object of `object_type` ("app_label.model"), newest first as given, made readable."""
    model = _model(object_type)
    columns = {f.column: f for f in model._meta.concrete_fields} if model else {}
    order = {column: n for n, column in enumerate(columns)}  # the model's own order, not the ledger's (jsonb's)
    names = _names(object_type, columns, events)
    entries = []
    for event in events:
        diff = event.changes if isinstance(event.changes, dict) else {}
        diff = dict(sorted(diff.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
        quiet = NOISE | ({"created_at"} if event.action == "create" else set())
        entry = Entry(event)
        for column, values in diff.items():
            values = values if isinstance(values, dict) else {"before": None, "after": values}
            before, after = values.get("before"), values.get("after")
            if column in quiet and len(diff) > 1:
                continue
            if event.action == "create" and after in (*UNSET, False):
                continue
            label = LABELS.get((object_type, column)) or _label(columns.get(column), column)
            entry.rows.append(Row(label, _shown(object_type, columns.get(column), column, before, names),
                                  _shown(object_type, columns.get(column), column, after, names)))
        entries.append(entry)
    return entries


def _model(object_type: str) -> type[models.Model] | None:
    app_label, _, name = object_type.partition(".")
    try:
        return apps.get_model(app_label, name)
    except (LookupError, ValueError):
        return None


def _target(object_type: str, column: str, field: models.Field | None) -> type[models.Model] | None:
    """The model a column's ids point to, if they point to one."""
    if (object_type, column) in ID_ARRAYS:
        return ID_ARRAYS[(object_type, column)]
    if field is not None and (field.many_to_one or field.one_to_one):
        return field.related_model  # type: ignore[return-value]  # a relation's model, never the string "self" here
    return None


def _names(object_type: str, columns: dict[str, models.Field], events: list[AuditEvent]) -> dict:
    """{model: {id: name}} for every id the events' columns point to: one query per model."""
    wanted: dict[type[models.Model], set[int]] = defaultdict(set)
    for event in events:
        for column, values in (event.changes.items() if isinstance(event.changes, dict) else ()):
            if not isinstance(values, dict):
                continue
            target = _target(object_type, column, columns.get(column))
            keyed = ID_KEYS.get((object_type, column))
            for value in (values.get("before"), values.get("after")):
                if keyed is not None and isinstance(value, dict):
                    wanted[keyed].update(int(key) for key in value if str(key).isdigit())
                if target is None:
                    continue
                for one in value if isinstance(value, list) else [value]:
                    if isinstance(one, int) and not isinstance(one, bool):
                        wanted[target].add(one)
    return {target: {pk: _name(obj) for pk, obj in target._default_manager.in_bulk(ids).items()}
            for target, ids in wanted.items()}


def _name(obj: models.Model) -> str:
    if isinstance(obj, get_user_model()):
        return obj.get_username()
    for attribute in ("number", "name", "title"):
        value = getattr(obj, attribute, None)
        if isinstance(value, str) and value:
            return value
    return str(obj)


def _label(field: models.Field | None, column: str) -> str:
    if field is None:
        return capfirst(column.replace("_", " "))
    return capfirst(str(field.verbose_name))


def _shown(object_type: str, field: models.Field | None, column: str, value: Any, names: dict) -> str:
    """A value as written by the ledger, as a person reads it."""
    if value in UNSET:
        return EMPTY
    target = _target(object_type, column, field)
    if target is not None:
        known = names.get(target, {})
        ids = value if isinstance(value, list) else [value]
        return ", ".join(known.get(one, f"#{one} (deleted)") for one in ids)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(field, ArrayField) and isinstance(value, list):
        return ", ".join(_choice(field.base_field, item) for item in value)
    if isinstance(field, models.DateTimeField) and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except ValueError:
            return value
    if (object_type, column) in ID_KEYS and isinstance(value, dict):
        known = names.get(ID_KEYS[(object_type, column)], {})
        return "\n".join(f"{known.get(int(key), f'#{key} (deleted)') if str(key).isdigit() else key}: "
                         f"{_compliance(facts) if isinstance(facts, dict) else facts}" for key, facts in value.items())
    if isinstance(value, list) and value and all(isinstance(item, dict) and "factor" in item for item in value):
        return "\n".join(f"{item['factor']}: {item.get('detail', '')}"
                         + (f" ({item['points']:+})" if isinstance(item.get("points"), int) else "") for item in value)
    if isinstance(value, dict | list):
        return _json(value)
    return _choice(field, value) if field is not None else str(value)


def _compliance(facts: dict) -> str:
    """What a CI was when the change was submitted: "tier 1, SOX, PCI, tags microservice"."""
    words = [f"tier {facts['criticality']}"] if facts.get("criticality") else []
    words += [flag for key, flag in (("sox_scoped", "SOX"), ("pci", "PCI"), ("phi", "PHI")) if facts.get(key)]
    if facts.get("tags"):
        words.append("tags " + ", ".join(map(str, facts["tags"])))
    return ", ".join(words) or EMPTY


def _choice(field: models.Field, value: Any) -> str:
    labels = dict(field.flatchoices) if field.choices else {}
    return str(labels.get(value, value))


def _json(value: dict | list) -> str:
    """A list of small objects one per line, `key: value` pairs; anything else as compact JSON."""
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return "\n".join(", ".join(f"{key}: {item[key]}" for key in item) for item in value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
