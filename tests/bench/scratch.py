"""The scratch database each benchmark creates next to DATABASE_URL's own, and drops when it ends."""

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg


def scratch_url(name: str) -> str:
    """DATABASE_URL (default: the loopback server) pointed at the database `name`."""
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/changeboard"))
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def admin(url: str, sql: str) -> None:
    """Run `sql` (CREATE/DROP DATABASE) on the server of `url`, connected to its `postgres` database."""
    parts = urlsplit(url)
    with psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                         user=parts.username or "postgres", password=parts.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(sql)


def setup_django(url: str, *, test_environment: bool = False) -> None:
    """Django on the scratch database; with test_environment, the test Client's host is allowed and
    e-mail stays in memory."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    if test_environment:
        from django.test.utils import setup_test_environment

        setup_test_environment()


def insert_cis(cursor, team_id: int, first: int, last: int) -> None:
    """CMDB services `ci-<first>` to `ci-<last>` of one team, by one INSERT ... SELECT: with the ledger's trigger
    on, one audit event each, the fastest way to fill a ledger."""
    cursor.execute(
        "INSERT INTO cmdb_configurationitem (name, ci_type, criticality, owner_team_id, lifecycle_status,"
        " region, tags, sox_scoped, phi, pci, compliance_reason, description, attributes, created_at,"
        " updated_at, github_environments, github_repository, health_url)"
        " SELECT 'ci-' || n, 'service', 1 + n %% 4, %(team)s, 'in_service', 'eu-west-2', ARRAY['bench'],"
        " n %% 7 = 0, false, false, '', 'benchmark CI', jsonb_build_object('n', n), now(), now(),"
        " '{}', '', '' FROM generate_series(%(first)s, %(last)s) AS n", {"team": team_id, "first": first, "last": last})
