"""What the stand-ins of ITSM tools share (the demo's ServiceNow, governance/itsm/demo_servicenow.py, and the tests'
others): a real HTTP/1.1 server in a thread, keeping connections alive as the tools do, which can fail the next
requests on purpose (a 500, or a 429 or 503 with Retry-After), go down (its port refuses connections and the
connections it kept are closed) and come back up on the same port, and checks the credentials each request brings."""

import base64
import contextlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# A connection kept alive this long without a request is closed, as a tool's front end would.
IDLE_SECONDS = 30


class Answer(Exception):
    """Raised by a route to answer with a status and a JSON body."""

    def __init__(self, status: int, body: dict | None = None, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class StandIn:
    """Subclasses route requests in `route(method, path, query, body, headers, raw)`, returning (status, body) or
    raising Answer; everything they keep is guarded by `self.lock`. `requests` lists every request that reached the
    server, failed on purpose or not, as (method, path)."""

    # The default credentials are the tests'; the demo's ServiceNow is given a password made for its run.
    def __init__(self, *, username: str = "changeboard", password: str = "standin-password-4f1b",  # noqa: S107
                 token: str = "", host: str = "127.0.0.1", port: int = 0):
        self.username, self.password, self.token = username, password, token
        self.host, self.port = host, port
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []
        self._failures: list[tuple[int, str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "StandIn":
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        # A connection kept alive would otherwise still be answered by a server that is down.
        with self.lock:
            kept, self._connections = self._connections, set()
        for connection in kept:
            with contextlib.suppress(OSError):  # the client closed it meanwhile
                connection.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        """Stop listening: connections to the port are refused until up()."""
        self.stop()

    def up(self) -> None:
        """Listen again, on the same port."""
        if self._server is None:
            self.start()

    def fail_next(self, n: int, status: int = 500, retry_after: str | float | None = None) -> None:
        """The next `n` requests answer `status` (with Retry-After when given) and change nothing; their error
        echoes the Authorization header they came with."""
        with self.lock:
            self._failures += [(status, None if retry_after is None else str(retry_after))] * n

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def authorized(self, header: str) -> bool:
        if self.token:
            return hmac.compare_digest(header, f"Bearer {self.token}")
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest(header, f"Basic {expected}")

    def route(self, method: str, path: str, query: dict[str, str], body, headers, raw: bytes
              ) -> tuple[int, dict | None]:
        raise NotImplementedError

    def _failure(self) -> tuple[int, str | None] | None:
        with self.lock:
            return self._failures.pop(0) if self._failures else None

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # every answer says its Content-Length, so the connection is kept
            # The headers and the body go out as two writes: on a kept connection, Nagle's algorithm would hold the
            # body until the client's delayed ACK, 40 ms per answer.
            disable_nagle_algorithm = True
            timeout = IDLE_SECONDS

            def setup(self):
                super().setup()
                with standin.lock:
                    standin._connections.add(self.connection)

            def finish(self):
                with standin.lock:
                    standin._connections.discard(self.connection)
                super().finish()

            def log_message(self, *args):
                pass

            def _serve(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with standin.lock:
                    standin.requests.append((self.command, parts.path))
                    standin.authorizations.append(self.headers.get("Authorization") or "")
                failure = standin._failure()
                if failure is not None:
                    status, retry_after = failure
                    # Echoes the credentials it was sent, as some error pages do: they must not reach a result.
                    detail = f"Failing on purpose; Authorization: {self.headers.get('Authorization')}"
                    return self._answer(status, {"error": {"message": "Failing on purpose", "detail": detail}},
                                        {"Retry-After": retry_after} if retry_after is not None else {})
                if not standin.authorized(self.headers.get("Authorization") or ""):
                    return self._answer(401, {"error": {"message": "User Not Authenticated",
                                                        "detail": "Required to provide Auth information"}})
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self._answer(400, {"error": {"message": "Invalid JSON in the request body"}})
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                try:
                    status, answer = standin.route(self.command, parts.path, query, body, self.headers, raw)
                except Answer as exc:
                    return self._answer(exc.status, exc.body, exc.headers)
                return self._answer(status, answer)

            def _answer(self, status: int, body: dict | None, headers: dict | None = None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler
