"""Django's flush, able to empty the ledger's guarded tables: TransactionTestCase, and so pytest-django's
`transactional_db` and `live_server`, call it after each test (tests/ledger_guards.py says how)."""

from django.core.management.commands import flush
from django.db import connections

from tests.ledger_guards import ledger_guards_lifted


class Command(flush.Command):
    def handle(self, **options):
        with ledger_guards_lifted(connections[options["database"]]):
            super().handle(**options)
