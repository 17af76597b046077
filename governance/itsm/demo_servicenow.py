"""A ServiceNow instance's Table API, the part Changeboard uses, kept in memory: the demo's ServiceNow, which `make run`
starts and points a connector at, and the tests'.

    python -m governance.itsm.demo_servicenow serve HOST:PORT
        Answers on HOST:PORT to the user and password in DEMO_SERVICENOW_USERNAME and DEMO_SERVICENOW_PASSWORD,
        holding the demo's incidents (DEMO_INCIDENTS) for the incident pull to find; Ctrl-C or SIGTERM stops it.

It answers `GET /api/now/table/<table>` with `sysparm_query` (field=value, !=, >=, <=, >, <, joined by ^, and
ORDERBY/ORDERBYDESC), `sysparm_fields`, `sysparm_limit` and `sysparm_offset`; `POST` to create (201, the record under
"result" with its sys_id and number); `GET` and `PATCH` of `/api/now/table/<table>/<sys_id>` (404 when there is no
such record). Like ServiceNow, it keeps no uniqueness on correlation_id: a connector that creates twice leaves two
records, and a test sees it.

`writes` keeps every applied create and update per correlation_id, in order, and `applied_keys(correlation_id)` their
idempotency keys, so a test can assert the order and that each update was applied once; `records(table)` lists what
the tables hold, `add_incident()` puts an incident there for the pull to find."""

import os
import re
import signal
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from governance.itsm.standin import Answer, StandIn

USERNAME_ENV = "DEMO_SERVICENOW_USERNAME"
PASSWORD_ENV = "DEMO_SERVICENOW_PASSWORD"  # noqa: S105 (the name of the variable holding it)
PREFIX = {"change_request": "CHG", "incident": "INC"}
TABLE_PATH = re.compile(r"/api/now/table/(?P<table>\w+)(?:/(?P<sys_id>[0-9a-f]{32}))?/?")
CONDITION = re.compile(r"(?P<field>\w+)(?P<op>!=|>=|<=|=|>|<)(?P<value>.*)")
OPERATORS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
             "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def now_text() -> str:
    return time_text(datetime.now(UTC))


def field_text(name: str) -> Callable[[dict], str]:
    """A record's field as the Table API compares and orders it: as text."""
    return lambda record: str(record.get(name, ""))


def time_text(moment: datetime) -> str:
    """A time as the Table API writes it: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class DemoIncident:
    """An incident the demo's ServiceNow holds from its start, on a demo CI (cmdb/demo.py), opened `minutes_ago`."""

    title: str
    ci: str
    priority: str
    state: str
    minutes_ago: int

    @property
    def sys_id(self) -> str:
        # Stable across runs: a second `make run` updates the incidents the first one brought in, adding none.
        return uuid.uuid5(uuid.NAMESPACE_URL, f"changeboard-demo-incident:{self.title}").hex


# Around payments-api, which the demo's pipeline deployed to production a few hours before (seed_demo): the pull
# brings them in and ranks that deployment among each one's suspects, by how near its CI is to payments-api.
DEMO_INCIDENTS = [
    DemoIncident("Card payments declined at checkout", "payments-api", "1 - Critical", "2", 40),
    DemoIncident("Payments time out in the mobile app", "mobile-bff", "2 - High", "2", 30),
    DemoIncident("Slow statement pages in online banking", "online-banking-web", "3 - Moderate", "1", 15),
]


class ServiceNowStandIn(StandIn):
    def __init__(self, **credentials) -> None:
        super().__init__(**credentials)
        self.tables: dict[str, dict[str, dict]] = {"change_request": {}, "incident": {}}
        self.writes: dict[str, list[dict]] = {}
        self._numbers: dict[str, int] = {}

    def records(self, table: str = "change_request") -> list[dict]:
        with self.lock:
            return [dict(record) for record in self.tables.get(table, {}).values()]

    def changes_for(self, correlation_id: str) -> list[dict]:
        return [record for record in self.records() if record.get("correlation_id") == correlation_id]

    def applied_keys(self, correlation_id: str) -> list[str]:
        """The idempotency keys of the writes applied to the change's record, in order (the connector sends each
        update's key in correlation_display): a key twice is an update applied twice."""
        with self.lock:
            return [write.get("correlation_display", "") for write in self.writes.get(correlation_id, [])]

    def add_incident(self, **fields) -> dict:
        """An incident as ServiceNow would hold it (for the pull to find), with its number, sys_id and times filled
        in where `fields` does not give them."""
        with self.lock:
            return dict(self._create("incident", fields))

    def add_demo_incidents(self, now: datetime) -> None:
        for incident in DEMO_INCIDENTS:
            self.add_incident(sys_id=incident.sys_id, short_description=incident.title, cmdb_ci=incident.ci,
                              priority=incident.priority, state=incident.state,
                              opened_at=time_text(now - timedelta(minutes=incident.minutes_ago)))

    def route(self, method, path, query, body, headers, raw):
        match = TABLE_PATH.fullmatch(path)
        if not match or match["table"] not in self.tables:
            raise Answer(400, {"error": {"message": "Invalid table", "detail": path}, "status": "failure"})
        table, sys_id = match["table"], match["sys_id"]
        with self.lock:
            if sys_id is None and method == "GET":
                return 200, {"result": self._list(table, query)}
            if sys_id is None and method == "POST":
                return 201, {"result": self._shown(self._create(table, self._fields(body)), query)}
            record = self.tables[table].get(sys_id or "")
            if record is None:
                raise Answer(404, {"error": {"message": "No Record found",
                                             "detail": "Record doesn't exist or ACL restricts the record retrieval"},
                                   "status": "failure"})
            if method == "GET":
                return 200, {"result": self._shown(record, query)}
            if method in ("PATCH", "PUT"):
                return 200, {"result": self._shown(self._update(table, record, self._fields(body)), query)}
        raise Answer(405, {"error": {"message": "Method not supported"}, "status": "failure"})

    def _fields(self, body) -> dict:
        if not isinstance(body, dict):
            raise Answer(400, {"error": {"message": "Exception while reading request",
                                         "detail": "The payload is not a JSON object"}, "status": "failure"})
        return {key: value for key, value in body.items() if key not in ("sys_id", "number")}

    def _create(self, table: str, fields: dict) -> dict:
        self._numbers[table] = self._numbers.get(table, 0) + 1
        stamp = now_text()
        # A request's body cannot set sys_id and number (_fields drops them); add_incident() may.
        record = {"sys_created_on": stamp, "sys_updated_on": stamp, "sys_id": uuid.uuid4().hex,
                  "number": f"{PREFIX.get(table, 'REC')}{self._numbers[table] + 1000000:07d}", **fields}
        self.tables[table][record["sys_id"]] = record
        self._written("create", table, record, fields)
        return record

    def _update(self, table: str, record: dict, fields: dict) -> dict:
        record.update(fields, sys_updated_on=now_text())
        self._written("update", table, record, fields)
        return record

    def _written(self, operation: str, table: str, record: dict, fields: dict) -> None:
        if table == "change_request":
            self.writes.setdefault(record.get("correlation_id", ""), []).append(
                {"operation": operation, "sys_id": record["sys_id"], **fields})

    def _list(self, table: str, query: dict[str, str]) -> list[dict]:
        records = list(self.tables[table].values())
        for term in filter(None, query.get("sysparm_query", "").split("^")):
            if term.startswith("ORDERBY"):
                descending = term.startswith("ORDERBYDESC")
                records.sort(key=field_text(term.removeprefix("ORDERBYDESC" if descending else "ORDERBY")),
                             reverse=descending)
            else:
                condition = CONDITION.fullmatch(term)
                if condition is None:
                    raise Answer(400, {"error": {"message": f"Invalid query term {term}"}, "status": "failure"})
                test = OPERATORS[condition["op"]]
                records = [r for r in records if test(str(r.get(condition["field"], "")), condition["value"])]
        offset = int(query.get("sysparm_offset", 0))
        limit = int(query.get("sysparm_limit", 10000))
        return [self._shown(record, query) for record in records[offset:offset + limit]]

    def _shown(self, record: dict, query: dict[str, str]) -> dict:
        fields = [f for f in query.get("sysparm_fields", "").split(",") if f]
        return {f: record.get(f, "") for f in fields} if fields else dict(record)



def serve(address: str) -> None:
    """Answer on `address` until SIGINT or SIGTERM, then stop quietly."""
    host, port = address.rsplit(":", 1)
    standin = ServiceNowStandIn(username=os.environ[USERNAME_ENV], password=os.environ[PASSWORD_ENV], host=host,
                                port=int(port))
    standin.add_demo_incidents(datetime.now(UTC))
    stopping = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server's threads start, which inherit it: only sigwait() below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    with standin:
        signal.sigwait(stopping)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "serve":
        print("usage: python -m governance.itsm.demo_servicenow serve HOST:PORT", file=sys.stderr)
        return 2
    missing = [name for name in (USERNAME_ENV, PASSWORD_ENV) if not os.environ.get(name)]
    if missing:
        print(f"set {' and '.join(missing)}: the credentials it accepts", file=sys.stderr)
        return 2
    serve(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
