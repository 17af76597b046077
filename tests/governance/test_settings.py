import os
import secrets
import subprocess
import sys

from django.conf import settings

# What tests/settings.py relaxes for the test run; a production process starts without them.
TEST_ONLY = {"SECRET_KEY", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"}


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    environment.update({"DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "false", **env})
    return subprocess.run([sys.executable, "manage.py", *args], env=environment, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)


def test_the_deploy_check_is_clean_under_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING",
                        SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="changeboard.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_database_url_that_is_not_postgresql_is_refused():
    result = run_manage("check", SECRET_KEY="x" * 50, DATABASE_URL="sqlite:///db.sqlite3")
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr


def test_a_malformed_boolean_setting_stops_start_up_loudly():
    result = run_manage("check", SECRET_KEY="x" * 50, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr
