"""How the test suite empties the ledger's tables, which refuse TRUNCATE, and deletes of unsealed captures,
to every role (governance/migrations/0020_ledger_guards.py).

The suite connects as the tables' owner, and only a table's owner may switch its triggers off: in one
transaction it disables the ledger's guards, empties the tables and enables the guards again before
committing, so no other session ever sees the ledger unguarded. The app's role in production owns no table
(`manage.py database_app_role`), so this path is closed to it.
"""

import contextlib
from collections.abc import Iterator

from django.db import transaction

from governance.models import AuditCapture, AuditCheckpoint, AuditEvent

LEDGER_TABLES = tuple(model._meta.db_table for model in (AuditEvent, AuditCheckpoint, AuditCapture))


@contextlib.contextmanager
def ledger_guards_lifted(connection) -> Iterator[None]:
    with transaction.atomic(using=connection.alias):
        _set_triggers(connection, "DISABLE")
        yield
        _set_triggers(connection, "ENABLE")


def _set_triggers(connection, state: str) -> None:
    with connection.cursor() as cursor:
        for table in LEDGER_TABLES:
            cursor.execute(f'ALTER TABLE "{table}" {state} TRIGGER USER')
