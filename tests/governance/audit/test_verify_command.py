"""`manage.py verify_audit` needs only a public key: the one given, or the public half of the configured signing
key; with neither, one line says what to pass, and the exit code says the ledger could not be checked."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from governance.audit import signing
from governance.audit.context import Actor, acting_as
from governance.audit.ledger import audit_checkpoint_create, audit_record
from governance.core import ed25519
from tests.conftest import database_url_of


def verify(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url_of(connection.settings_dict),
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "verify_audit", *args],
        env=environ,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


NO_KEY = {"AUDIT_SIGNING_KEY": "", "AUDIT_SIGNING_KEY_FILE": ""}


@pytest.fixture
def signed_ledger(transactional_db):
    with acting_as(Actor(kind="system", name="fixture")):
        for n in range(3):
            audit_record("note", object_type="test.thing", object_id=str(n))
    return audit_checkpoint_create()


def test_without_a_private_key_the_published_public_key_verifies(signed_ledger, tmp_path):
    published = tmp_path / "changeboard-audit.pub"
    published.write_text(ed25519.public_key_pem(signing.public_key()))
    result = verify("--public-key", str(published), **NO_KEY)
    assert result.returncode == 0, result.stderr
    assert "1 signed checkpoints" in result.stdout


def test_without_public_key_the_configured_keys_public_half_verifies(signed_ledger):
    result = verify()  # the test settings configure AUDIT_SIGNING_KEY; only its public half is used
    assert result.returncode == 0, result.stderr
    assert "Audit ledger verified" in result.stdout


def test_with_no_key_at_all_one_line_says_what_to_pass_and_no_traceback(signed_ledger):
    result = verify(**NO_KEY)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--public-key" in lines[0] and "/audit/key/" in lines[0]
    assert result.stdout == ""


def test_with_no_key_a_ledger_with_nothing_signed_is_still_walked(transactional_db):
    with acting_as(Actor(kind="system", name="fixture")):
        audit_record("note", object_type="test.thing", object_id="1")
    result = verify(**NO_KEY)
    assert result.returncode == 0, result.stderr
    assert "0 signed checkpoints" in result.stdout


def test_an_unreadable_public_key_file_is_one_line(signed_ledger, tmp_path):
    result = verify("--public-key", str(tmp_path / "missing.pub"), **NO_KEY)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--public-key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line():
    result = verify(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: Cannot read the audit ledger:")
