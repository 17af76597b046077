"""The demo's fleet: the hosts a demo deployment really changes, so `make run` shows a rollout doing something.

    python -m releases.demo_fleet serve STATE_DIR INITIAL_DIGEST HOST:PORT...
        What `make run` starts: each address answers GET /health with the build it serves (200, the digest).
    python -m releases.demo_fleet forward|backward|check STATE_DIR TARGET...
        The demo plan's command executor: forward puts CB_ARTIFACT_DIGEST on each target, a target at a time, as a
        rolling restart would; backward puts CB_PREVIOUS_DIGEST back; check exits 0 when every target serves
        CB_ARTIFACT_DIGEST, 1 when one does not.

A target's build is a file in STATE_DIR, replaced whole, so a rollout killed half-way leaves each target on one
build or the other, never a torn one.
"""

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# How long one target takes to restart on its new build: long enough to watch a wave advance.
RESTART_SECONDS = 1.5


def served_file(state: Path, target: str) -> Path:
    return state / target.replace(":", "_").replace("/", "_")


def serving(state: Path, target: str) -> str:
    try:
        return served_file(state, target).read_text()
    except FileNotFoundError:
        return ""


def put(state: Path, target: str, digest: str) -> None:
    staged = served_file(state, target).with_suffix(".new")
    staged.write_text(digest)
    os.replace(staged, served_file(state, target))


def _server(state: Path, target: str) -> ThreadingHTTPServer:
    host, port = target.rsplit(":", 1)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = serving(state, target).encode()
            found = self.path == "/health" and bool(body)
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args) -> None:  # the health checks would fill the terminal
            pass

    return ThreadingHTTPServer((host, int(port)), Health)


def serve(state: Path, initial: str, targets: list[str]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    servers = []
    for target in targets:
        if not serving(state, target):
            put(state, target, initial)
        servers.append(_server(state, target))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


def roll(state: Path, targets: list[str], digest: str) -> None:
    for target in targets:
        time.sleep(RESTART_SECONDS)
        put(state, target, digest)
        print(f"{target} now serves {digest}", flush=True)


def main(argv: list[str]) -> int:
    command, state, *rest = argv
    folder = Path(state)
    if command == "serve":
        serve(folder, rest[0], rest[1:])
    elif command == "forward":
        roll(folder, rest, os.environ["CB_ARTIFACT_DIGEST"])
    elif command == "backward":
        roll(folder, rest, os.environ["CB_PREVIOUS_DIGEST"])
    elif command == "check":
        return 0 if all(serving(folder, target) == os.environ["CB_ARTIFACT_DIGEST"] for target in rest) else 1
    else:
        print(f"unknown command {command!r}: serve, forward, backward or check", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
