import os

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from psycopg import sql

from governance.models import AuditCapture, AuditCheckpoint, AuditEvent


class Command(BaseCommand):
    help = (
        "Run as the tables' owner, after migrate: create or update the database role the web app and the "
        "workers connect as. It may read and write rows, in today's tables and those later migrations add, "
        "but owns nothing and may not truncate; ledger rows it may only read and add, captures only read, add "
        "and (as the sealer) delete. The password is taken from DATABASE_APP_PASSWORD (required to create)."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", nargs="?", default="changeboard_app")

    def handle(self, *args, role, **options):
        password = os.environ.get("DATABASE_APP_PASSWORD") or None
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_schema(), current_database()")
            owner, schema, database = cursor.fetchone()
            if role == owner:
                raise CommandError(f"{role} is the role running this, which owns the tables: name another role")
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            found = cursor.fetchone()
            if found is None and password is None:
                raise CommandError(f"role {role} does not exist: set DATABASE_APP_PASSWORD to create it")
            if found is not None and found[0]:
                raise CommandError(f"role {role} is a superuser, which no privilege or trigger setting binds")
            quoted = {"role": sql.Identifier(role), "schema": sql.Identifier(schema),
                      "database": sql.Identifier(database)}
            if password is not None:
                verb = "CREATE" if found is None else "ALTER"
                cursor.execute(self._sql(verb + " ROLE {role} LOGIN PASSWORD {password}",
                                         password=sql.Literal(password), **quoted))
            for statement in STATEMENTS:
                cursor.execute(self._sql(statement, **quoted))
        self.stdout.write(f"Role {role} may read and write the rows of {database}.{schema}; {owner} owns the tables.")

    def _sql(self, template: str, **parts) -> str:
        # Utility statements take no bind parameters: names and the password are quoted by psycopg.
        return sql.SQL(template).format(**parts).as_string(connection.connection)


_LEDGER = ", ".join(model._meta.db_table for model in (AuditEvent, AuditCheckpoint))
_CAPTURE = AuditCapture._meta.db_table
STATEMENTS = (
    "GRANT CONNECT ON DATABASE {database} TO {role}",
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    # Rights the app never needs, taken back in case the role held them before.
    "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    # Tables and sequences the owner creates later (the next migrate) come with the same rights.
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    # The ledger's triggers refuse these to everyone; without the privilege they are refused twice.
    f"REVOKE UPDATE, DELETE ON {_LEDGER} FROM {{role}}",
    f"REVOKE UPDATE ON {_CAPTURE} FROM {{role}}",
)
