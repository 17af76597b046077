"""Incidents brought in from the ITSM tools, by signed webhook and by pull: validated field by field, one row per source
and id whichever road brought it, and its likely causes ranked again whenever it changes."""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Prefetch
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cmdb.models import ConfigurationItem
from cmdb.selectors import cis_named
from governance.core.errors import InvalidInput
from governance.core.inputs import MAX_NAMES_PER_LIST, offset_refusal, text_fault
from governance.itsm.connectors import connectors
from governance.itsm.correlation import suspects_rank
from governance.itsm.remote import MissingCredential, RemoteRefused
from governance.itsm.servicenow import ServiceNowClient
from governance.models.itsm import Incident, IncidentSuspect

logger = logging.getLogger(__name__)

# ServiceNow's priority is "1 - Critical" ... "5 - Planning" (or the bare digit, with sysparm_display_value=false).
_PRIORITY = re.compile(r"^\s*([1-5])(\s*-.*)?$")
# A pull asks again for this much before the newest update it holds: ServiceNow's counts lag by up to 30 s per node.
PULL_OVERLAP = timedelta(minutes=5)
FIRST_PULL = timedelta(days=7)


@dataclass(frozen=True)
class IncidentFields:
    """An incident as the ITSM tool sent it, checked: what the row holds, and when the tool last changed it."""

    external_id: str
    number: str
    title: str
    priority: int
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    cis: list[ConfigurationItem]
    remote_updated_at: datetime | None


def incident_upsert(*, source: str, record: dict) -> Incident:
    """Create or update the incident `record` describes (a ServiceNow incident record, or the same fields by their
    plain names); an older copy than the one held changes nothing. Its suspects are ranked in the same transaction.
    Two arrivals of one incident at once race on the unique constraint: the loser updates the winner's row."""
    fields = incident_fields(record)
    with transaction.atomic():
        incident = Incident.objects.select_for_update().filter(source=source,
                                                               external_id=fields.external_id).first()
        if incident is None:
            try:
                with transaction.atomic():
                    incident = _incident_create(source, fields)
            except IntegrityError:
                incident = Incident.objects.select_for_update().get(source=source, external_id=fields.external_id)
            else:
                suspects_rank(incident)
                return incident
        if _incident_update(incident, fields):
            suspects_rank(incident)
        return incident


def _incident_create(source: str, fields: IncidentFields) -> Incident:
    incident = Incident.objects.create(
        source=source, external_id=fields.external_id, number=fields.number, title=fields.title,
        priority=fields.priority, state=fields.state, opened_at=fields.opened_at, resolved_at=fields.resolved_at,
        updated_at=fields.remote_updated_at or timezone.now())
    incident.affected_cis.set(fields.cis)
    return incident


def _incident_update(incident: Incident, fields: IncidentFields) -> bool:
    """Apply a newer copy; whether anything changed."""
    if fields.remote_updated_at is not None and fields.remote_updated_at <= incident.updated_at:
        return False
    given = {"number": fields.number, "title": fields.title, "priority": fields.priority, "state": fields.state,
             "opened_at": fields.opened_at, "resolved_at": fields.resolved_at}
    changed = [name for name, value in given.items() if getattr(incident, name) != value]
    cis_changed = {ci.pk for ci in fields.cis} != set(incident.affected_cis.values_list("pk", flat=True))
    if not changed and not cis_changed:
        return False
    for name in changed:
        setattr(incident, name, given[name])
    incident.updated_at = fields.remote_updated_at or timezone.now()
    incident.save(update_fields=[*changed, "updated_at"])
    if cis_changed:
        incident.affected_cis.set(fields.cis)
    return True


def incident_fields(record) -> IncidentFields:
    """The incident `record` describes, or an InvalidInput naming the first field at fault. ServiceNow's names are
    read first (sys_id, short_description, cmdb_ci, sys_updated_on), then the plain ones (external_id, title,
    affected_cis, updated_at)."""
    if not isinstance(record, dict):
        raise InvalidInput("Give the incident as a JSON object.", code="not_an_object")
    external_id = _text(record, ("sys_id", "external_id"), limit=200)
    number = _text(record, ("number",), limit=100, required=False)
    title = _text(record, ("short_description", "title"), limit=500)
    state = _text(record, ("state",), limit=50, required=False)
    opened_at = _moment(record, ("opened_at",))
    resolved_at = _moment(record, ("resolved_at",), required=False)
    if opened_at is None:
        raise InvalidInput("Give when the incident was opened.", field="opened_at", code="required")
    if resolved_at is not None and resolved_at < opened_at:
        raise InvalidInput("An incident cannot be resolved before it was opened.", field="resolved_at")
    return IncidentFields(
        external_id=external_id, number=number, title=title, priority=_priority(record), state=state,
        opened_at=opened_at, resolved_at=resolved_at, cis=_affected_cis(record),
        remote_updated_at=_moment(record, ("sys_updated_on", "updated_at"), required=False))


def _given(record: dict, names: tuple[str, ...]) -> tuple[str, object]:
    """The first of `names` the record holds with a value, else the first name and None."""
    for name in names:
        value = record.get(name)
        if isinstance(value, dict):  # ServiceNow's {"value", "display_value"} with sysparm_display_value=all
            value = value.get("display_value", value.get("value"))
        if value not in (None, ""):
            return name, value
    return names[0], None


def _text(record: dict, names: tuple[str, ...], *, limit: int, required: bool = True) -> str:
    name, value = _given(record, names)
    if value is None:
        if required:
            raise InvalidInput("This field is required.", field=name, code="required")
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput("Give text.", field=name, code="invalid")
    value = value.strip()
    fault = text_fault(value)
    if fault:
        raise InvalidInput(fault.message, field=name, code=fault.code)
    if len(value) > limit:
        raise InvalidInput(f"At most {limit} characters.", field=name, code="max_length")
    if required and not value:
        raise InvalidInput("This field is required.", field=name, code="required")
    return value


def _priority(record: dict) -> int:
    name, value = _given(record, ("priority",))
    if value is None:
        raise InvalidInput("This field is required.", field=name, code="required")
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    match = _PRIORITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput("A priority is 1 (critical) to 5 (planning), or ServiceNow's \"1 - Critical\" to "
                           "\"5 - Planning\".", field=name, code="invalid_choice")
    return int(match.group(1))


def _moment(record: dict, names: tuple[str, ...], *, required: bool = True) -> datetime | None:
    name, value = _given(record, names)
    if value is None:
        if required:
            raise InvalidInput("This field is required.", field=name, code="required")
        return None
    moment = None
    if isinstance(value, str) and text_fault(value) is None:
        text = value.strip()
        try:
            moment = parse_datetime(text)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            # ServiceNow writes "YYYY-MM-DD HH:MM:SS" in UTC (the Table API's default): a time without an offset is UTC.
            moment = moment.replace(tzinfo=UTC)
    if moment is None:
        raise InvalidInput("Give an ISO 8601 time, or ServiceNow's \"YYYY-MM-DD HH:MM:SS\" in UTC.", field=name,
                           code="invalid")
    if offset_refusal(moment):
        raise InvalidInput(offset_refusal(moment) or "", field=name, code="offset_out_of_range")
    return moment


def _affected_cis(record: dict) -> list[ConfigurationItem]:
    """The configuration items by name: ServiceNow's one `cmdb_ci`, or a list `affected_cis`."""
    if record.get("affected_cis") not in (None, ""):
        name, given = "affected_cis", record["affected_cis"]
        if not isinstance(given, list):
            raise InvalidInput("Give a list of configuration item names.", field=name, code="not_a_list")
    else:
        name, value = _given(record, ("cmdb_ci",))
        given = [] if value is None else [value]
    if len(given) > MAX_NAMES_PER_LIST:
        raise InvalidInput(f"Give at most {MAX_NAMES_PER_LIST}; {len(given)} were given.", field=name,
                           code="too_many")
    names = []
    for index, item in enumerate(given):
        value = item.get("display_value", item.get("name")) if isinstance(item, dict) else item
        if not isinstance(value, str) or not value.strip() or text_fault(value) or len(value) > 200:
            raise InvalidInput("Give a configuration item's name.", field=f"{name}[{index}]", code="invalid")
        names.append(value.strip())
    found, unknown = cis_named(names)
    if unknown:
        raise InvalidInput(f"No configuration item is named {', '.join(unknown[:5])}.", field=name,
                           code="does_not_exist")
    return list({ci.pk: ci for ci in found}.values())


def incidents_pull_since(source: str, now: datetime) -> datetime:
    """Where a pull of `source` starts: a little before the newest update held, or a week back the first time."""
    newest = Incident.objects.filter(source=source).order_by("-updated_at").values_list("updated_at",
                                                                                          flat=True).first()
    return newest - PULL_OVERLAP if newest else now - FIRST_PULL


def incidents_take(*, source: str, records: list) -> tuple[int, int]:
    """Upsert each pulled record on its own: one malformed incident is logged and skipped, not the whole pull.
    Returns (taken, refused)."""
    taken = refused = 0
    for record in records:
        try:
            incident_upsert(source=source, record=record)
        except InvalidInput as exc:
            refused += 1
            logger.warning("An incident pulled from %s was refused: %s (%s)", source, exc.message, exc.field)
        else:
            taken += 1
    return taken, refused


def incidents_listed():
    """The incidents list: CIs in one query, suspects counted in the same one."""
    return (Incident.objects.prefetch_related("affected_cis")
            .annotate(suspect_count=Count("suspects", distinct=True)).order_by("-opened_at", "-pk"))


def incident_detailed():
    """One incident with its ranked suspects, their deployments and who decided them."""
    return Incident.objects.prefetch_related(
        "affected_cis",
        Prefetch("suspects", queryset=IncidentSuspect.objects.select_related(
            "deployment__service", "deployment__environment", "deployment__artifact", "decided_by")
            .order_by("rank")))


def incidents_pull(*, now: datetime | None = None) -> dict[str, tuple[int, int]]:
    """Read the incidents each ServiceNow connector updated since the last pull and take them as the webhook does:
    (taken, refused) per connector. A connector that cannot be reached is logged and asked again next time."""
    now = now or timezone.now()
    pulled = {}
    for config in connectors():
        if config.kind != "servicenow":
            continue
        try:
            records = ServiceNowClient(config).incidents_since(incidents_pull_since(config.name, now))
        except (RemoteRefused, MissingCredential) as exc:
            logger.warning("Incidents could not be pulled from %s: %s", config.name, exc)
            continue
        pulled[config.name] = incidents_take(source=config.name, records=records)
    return pulled
