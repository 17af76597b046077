"""The access review: who held which role, and which API tokens could act for which services and environments, at
any moment, replayed from the ledger's events (role memberships are rows of auth.user_groups, a token and its
scope rows of governance.apitoken and its services and environments), never from today's tables, which may have
changed or lost the rows since."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import Group, Permission, User

from cmdb.models import ConfigurationItem, Environment, Team
from governance.audit.selectors import audit_events
from governance.evidence.period import Period
from governance.models import AuditEvent, EvidenceScope
from governance.roles import Role, team_role_codename

# A token with no scope of services (or of environments) acts for any: shown as this one name.
ANY = "*"
ACCESS_COLUMNS = ("subject", "kind", "grant", "services", "environments", "held_from", "held_until", "source")

MEMBERSHIP = "auth.user_groups"
# An approver role held for one team only: a django-guardian permission on a cmdb team, of a user or of a group.
USER_TEAM_ROLE = "guardian.userobjectpermission"
GROUP_TEAM_ROLE = "guardian.groupobjectpermission"
GRANTS = (MEMBERSHIP, USER_TEAM_ROLE, GROUP_TEAM_ROLE)
ISSUED = "governance.apitoken"
SCOPE_SERVICES = "governance.apitoken_services"
SCOPE_ENVIRONMENTS = "governance.apitoken_environments"
# Who acted, and in which request: events alike in these are one act (see _Token.mark).
ACT = ("actor_kind", "actor_id", "token_id", "request_id")
# The events that name what the ids of the others meant when they were written.
NAMES = {"auth.user": "username", "auth.group": "name", "cmdb.configurationitem": "name",
         "cmdb.environment": "name", "cmdb.team": "name"}
# The flags of a CI that put it in an evidence scope, as the ledger last recorded them.
SCOPE_FLAGS: dict[str, str] = {EvidenceScope.SOX: "sox_scoped", EvidenceScope.PHI: "phi"}


@dataclass(frozen=True)
class AccessRow:
    """One grant held without change from `held_from` to `held_until` (None: still held); `source` names the
    ledger events it was read from. A role held for one team reaches that team's CIs: its services are
    ("team <name>",); a team role granted to a group is held by its members, the subject "members of <group>"."""

    subject: str
    kind: str  # "role" | "token"
    grant: str
    services: tuple[str, ...]
    environments: tuple[str, ...]
    held_from: datetime | None
    held_until: datetime | None
    source: str

    def as_dict(self) -> dict:
        return {"subject": self.subject, "kind": self.kind, "grant": self.grant, "services": list(self.services),
                "environments": list(self.environments),
                "held_from": self.held_from.isoformat() if self.held_from else None,
                "held_until": self.held_until.isoformat() if self.held_until else None, "source": self.source}


def access_review(period: Period) -> list[AccessRow]:
    """Every grant that was held at some moment of the period, with when it began and ended; in a SOX or PHI
    review, a token scoped to services none of which are in scope is left out (roles reach every CI of theirs)."""
    return [row for row in _grants(period.scope)
            if (row.held_from is None or row.held_from < period.end)
            and (row.held_until is None or row.held_until > period.start)]


def access_at(at: datetime) -> list[AccessRow]:
    """The grants held at `at`."""
    return [row for row in _grants()
            if (row.held_from is None or row.held_from <= at) and (row.held_until is None or row.held_until > at)]


def _after(event: AuditEvent, name: str):
    change = event.changes.get(name)
    return change.get("after") if isinstance(change, dict) else None


def _before(event: AuditEvent, name: str):
    change = event.changes.get(name)
    return change.get("before") if isinstance(change, dict) else None


def _moment(value) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass
class _Names:
    """What each id was called, as the ledger last recorded it; today's tables only for rows written before the
    ledger began (the role groups made by migrations)."""

    known: dict[str, dict[str, str]] = field(default_factory=lambda: {label: {} for label in NAMES})
    flags: dict[str, dict[str, bool]] = field(default_factory=dict)  # CI id -> its scope flags
    read: set[tuple[str, str]] = field(default_factory=set)  # (label, id) whose events were read

    def read_ledger(self, label: str, ids: Iterable[str]) -> None:
        """Learn from the ledger's events of these rows only, each once: a ledger holds the events of every CI
        ever written, and holding all their names would grow with the ledger rather than with the review."""
        unread = {each for each in ids if (label, each) not in self.read}
        if not unread:
            return
        self.read.update((label, each) for each in unread)
        events = AuditEvent.objects.filter(object_type=label, object_id__in=unread).order_by("seq")
        for event in events.only("seq", "action", "object_type", "object_id", "changes").iterator():
            self.learn(event)

    def learn(self, event: AuditEvent) -> None:
        name = _after(event, NAMES[event.object_type]) or _before(event, NAMES[event.object_type])
        if name:
            self.known[event.object_type][event.object_id] = str(name)
        if event.object_type == "cmdb.configurationitem" and event.action != "delete":
            flags = self.flags.setdefault(event.object_id, {})
            flags.update({flag: bool(_after(event, flag)) for flag in SCOPE_FLAGS.values() if flag in event.changes})

    def in_scope(self, ci_ids: Iterable[str], scope: str) -> bool:
        """Was any of these CIs in `scope`, as last recorded?"""
        flag = SCOPE_FLAGS.get(scope)
        if flag is None:
            return True
        wanted = set(ci_ids)
        self.read_ledger("cmdb.configurationitem", wanted)
        missing = [each for each in wanted if flag not in self.flags.get(each, {})]
        for pk, value in ConfigurationItem.objects.filter(pk__in=missing).values_list("pk", flag):
            self.flags.setdefault(str(pk), {})[flag] = value
        return any(self.flags.get(each, {}).get(flag, False) for each in wanted)

    def of(self, label: str, ids: Iterable) -> dict[str, str]:
        wanted = {str(each) for each in ids if each is not None}
        self.read_ledger(label, wanted)
        missing = wanted - set(self.known[label])
        if missing:
            model = {"auth.user": User, "auth.group": Group, "cmdb.configurationitem": ConfigurationItem,
                     "cmdb.environment": Environment, "cmdb.team": Team}[label]
            for pk, name in model._default_manager.filter(pk__in=missing).values_list("pk", NAMES[label]):
                self.known[label][str(pk)] = name
        return {each: self.known[label].get(each, f"#{each}") for each in wanted}


@dataclass
class _Token:
    """A token as the ledger replays it: its row's values and its scope rows, each change a new segment."""

    values: dict
    opened_seq: int
    services: dict[str, str] = field(default_factory=dict)  # scope row id -> CI id
    environments: dict[str, str] = field(default_factory=dict)
    segments: list[tuple[datetime, int, tuple, tuple, bool, bool]] = field(default_factory=list)
    deleted_at: datetime | None = None
    closed_seq: int | None = None
    last_act: tuple = ()
    last_position: int = -2

    def mark(self, event: AuditEvent, position: int) -> None:
        """The scope as it stands after `event`, the `position`th token event replayed. One service call writes a
        token's row and its scope rows one by one, each an event; the ledger keeps no transaction id, so events
        on one token next to each other, by the same actor in the same request, are taken as one change."""
        act = tuple(getattr(event, name) for name in ACT)
        state = (tuple(sorted(self.services.values())), tuple(sorted(self.environments.values())),
                 bool(self.values.get("services_scoped")), bool(self.values.get("environments_scoped")))
        if self.segments and act == self.last_act and position == self.last_position + 1:
            self.segments[-1] = (*self.segments[-1][:2], *state)
        else:
            self.segments.append((event.occurred_at, event.seq, *state))
        self.last_act, self.last_position = act, position


def _grants(scope: str = EvidenceScope.ALL) -> list[AccessRow]:
    types = [*GRANTS, ISSUED, SCOPE_SERVICES, SCOPE_ENVIRONMENTS]  # names are read for the ids shown (_Names)
    names = _Names()
    granted: dict[tuple[str, str], tuple[dict, datetime, int]] = {}  # (table, row id) -> (row, since, seq)
    held: list[tuple[str, dict, datetime | None, datetime | None, int, int | None]] = []
    tokens: dict[str, _Token] = {}
    scope_owner: dict[str, str] = {}  # "services:<row id>" -> token id
    position = 0
    events = audit_events().filter(object_type__in=types).order_by("seq")
    for event in events.only("seq", "occurred_at", "action", "object_type", "object_id", "changes", *ACT).iterator():
        kind, row, at = event.object_type, event.object_id, event.occurred_at
        if kind in GRANTS:
            if event.action in ("update", "delete") and (kind, row) in granted:
                values, since, seq = granted.pop((kind, row))
                held.append((kind, values, since, at, seq, event.seq))
            if event.action in ("create", "update"):
                values = {name: change.get("after") for name, change in event.changes.items()
                          if isinstance(change, dict)}
                granted[(kind, row)] = (values, at, event.seq)
        elif kind == ISSUED:
            position += 1
            _token_event(tokens, event, position)
        else:
            position += 1
            _scope_event(tokens, scope_owner, event, position)
    held.extend((kind, values, since, None, seq, None) for (kind, _), (values, since, seq) in granted.items())
    return _role_rows(held, names) + _token_rows(tokens, names, scope)


def _token_event(tokens: dict[str, _Token], event: AuditEvent, position: int) -> None:
    row = event.object_id
    if event.action == "create":
        tokens[row] = _Token(values={name: change.get("after") for name, change in event.changes.items()
                                     if isinstance(change, dict)}, opened_seq=event.seq)
        tokens[row].mark(event, position)
    elif row in tokens and event.action == "update":
        token = tokens[row]
        token.values.update({name: change.get("after") for name, change in event.changes.items()
                             if isinstance(change, dict)})
        if "revoked_at" in event.changes:
            token.closed_seq = event.seq
        token.mark(event, position)
    elif row in tokens and event.action == "delete":
        tokens[row].deleted_at, tokens[row].closed_seq = event.occurred_at, event.seq


def _scope_event(tokens: dict[str, _Token], scope_owner: dict[str, str], event: AuditEvent,
                 position: int) -> None:
    services = event.object_type == SCOPE_SERVICES
    column = "configurationitem_id" if services else "environment_id"
    key = f"{'services' if services else 'environments'}:{event.object_id}"
    if event.action in ("update", "delete"):
        owner = scope_owner.pop(key, None)
        if owner in tokens:
            (tokens[owner].services if services else tokens[owner].environments).pop(event.object_id, None)
            tokens[owner].mark(event, position)
    if event.action in ("create", "update"):
        owner = str(_after(event, "apitoken_id"))
        if owner in tokens:
            scope_owner[key] = owner
            (tokens[owner].services if services else tokens[owner].environments)[event.object_id] = str(
                _after(event, column))
            tokens[owner].mark(event, position)


def _role_rows(held, names: _Names) -> list[AccessRow]:
    users = names.of("auth.user", [values.get("user_id") for _, values, *_ in held])
    groups = names.of("auth.group", [values.get("group_id") for _, values, *_ in held])
    teams = names.of("cmdb.team", [values.get("object_pk") for kind, values, *_ in held if kind != MEMBERSHIP])
    # Permissions are made by migrations from the code, not written by anyone: today's table names them.
    team_roles = {str(pk): codename.removeprefix(team_role_codename("")) for pk, codename in Permission.objects.filter(
        codename__in=[team_role_codename(role) for role in Role.values], content_type__app_label="cmdb",
        content_type__model="team").values_list("pk", "codename")}
    rows = []
    for kind, values, since, until, opened, closed in held:
        if kind == MEMBERSHIP:
            subject, grant, reach = users[str(values.get("user_id"))], groups[str(values.get("group_id"))], (ANY,)
        else:
            grant = team_roles.get(str(values.get("permission_id")), "")
            reach = (f"team {teams[str(values.get('object_pk'))]}",)
            subject = (users[str(values.get("user_id"))] if kind == USER_TEAM_ROLE
                       else f"members of {groups[str(values.get('group_id'))]}")
        if grant not in Role.values:
            continue  # a group or permission that is no role grants nothing the review is about
        rows.append(AccessRow(subject=subject, kind="role", grant=grant, services=reach, environments=(ANY,),
                              held_from=since, held_until=until, source=_source(kind, opened, closed)))
    return sorted(rows, key=_order)


def _token_rows(tokens: dict[str, _Token], names: _Names, scope: str) -> list[AccessRow]:
    users = names.of("auth.user", [token.values.get("user_id") for token in tokens.values()])
    cis = names.of("cmdb.configurationitem", [ci for token in tokens.values() for segment in token.segments
                                              for ci in segment[2]])
    environments = names.of("cmdb.environment", [env for token in tokens.values() for segment in token.segments
                                                 for env in segment[3]])
    rows = []
    for token in tokens.values():
        ends = [moment for moment in (_moment(token.values.get("revoked_at")), _moment(token.values.get("expires_at")),
                                      token.deleted_at) if moment is not None]
        end = min(ends) if ends else None
        grant = f"{token.values.get('name', '')} ({token.values.get('prefix', '')}…)"
        subject = users.get(str(token.values.get("user_id")), "")
        for index, (since, seq, ci_ids, env_ids, services_scoped, environments_scoped) in enumerate(token.segments):
            following = token.segments[index + 1] if index + 1 < len(token.segments) else None
            until, closed = (following[0], following[1]) if following else (None, None)
            if end is not None and (until is None or until >= end):
                # Revoked or deleted: that event ends it; expired: no event does.
                until, closed = end, token.closed_seq if end != _moment(token.values.get("expires_at")) else None
            if (until is not None and until <= since) or (services_scoped and not names.in_scope(ci_ids, scope)):
                continue
            rows.append(AccessRow(
                subject=subject, kind="token", grant=grant,
                services=tuple(sorted(cis[each] for each in ci_ids)) if services_scoped else (ANY,),
                environments=tuple(sorted(environments[each] for each in env_ids)) if environments_scoped else (ANY,),
                held_from=since, held_until=until, source=_source(ISSUED, seq, closed)))
    return sorted(rows, key=_order)


def _source(kind: str, opened: int, closed: int | None) -> str:
    return f"ledger {kind} #{opened}" + (f" to #{closed}" if closed is not None else "")


def _order(row: AccessRow) -> tuple:
    return (row.subject, row.grant, row.held_from or datetime.min)
