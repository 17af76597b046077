import base64
import os
import secrets
import subprocess
import sys

from django.conf import settings

# What tests/settings.py relaxes for the test run; a production process starts without them.
TEST_ONLY = {"SECRET_KEY", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
             "AUDIT_SIGNING_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    # No database answers here: the checks must not need one.
    environment.update({"DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "false",
                        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/absent", **env})
    return subprocess.run([sys.executable, "manage.py", *args], env=environment, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)


def test_the_deploy_check_is_clean_under_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING",
                        SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="changeboard.example.com",
                        AUDIT_SIGNING_KEY=base64.b64encode(os.urandom(32)).decode())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_serve_without_a_secret_key():
    deploy = run_manage("check", "--deploy", ALLOWED_HOSTS="changeboard.example.com")
    assert deploy.returncode != 0
    assert "SECRET_KEY is not set" in deploy.stderr
    environment = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    environment.update({"DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "false"})
    serve = subprocess.run([sys.executable, "-c", "import governance.wsgi"], env=environment, cwd=settings.BASE_DIR,
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode != 0
    assert "SECRET_KEY must be set to serve requests" in serve.stderr


def test_a_database_url_that_is_not_postgresql_is_refused():
    result = run_manage("check", SECRET_KEY="x" * 50, DATABASE_URL="sqlite:///db.sqlite3")
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr


def test_a_malformed_boolean_setting_stops_start_up_loudly():
    result = run_manage("check", SECRET_KEY="x" * 50, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_a_base_url_that_is_not_a_web_address_stops_start_up_loudly():
    result = run_manage("check", SECRET_KEY="x" * 50, CHANGEBOARD_BASE_URL="changeboard.example.com")
    assert result.returncode != 0
    assert "CHANGEBOARD_BASE_URL='changeboard.example.com' must start with http:// or https://" in result.stderr


def test_the_deploy_check_demands_an_audit_signing_key():
    result = run_manage("check", "--deploy", SECRET_KEY=secrets.token_urlsafe(50),
                        ALLOWED_HOSTS="changeboard.example.com")
    assert result.returncode != 0
    assert "changeboard.E001" in result.stderr and "AUDIT_SIGNING_KEY" in result.stderr
