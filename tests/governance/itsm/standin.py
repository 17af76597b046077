"""What the ITSM stand-ins share: a real HTTP server on loopback in a thread, which can fail the next requests on
purpose (a 500, or a 429 or 503 with Retry-After), go down (its port refuses connections) and come back up on the
same port, and checks the credentials each request brings. Also the receiver of the generic signed webhook."""

import base64
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from governance.itsm.webhook_out import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature


class Answer(Exception):
    """Raised by a route to answer with a status and a JSON body."""

    def __init__(self, status: int, body: dict | None = None, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class StandIn:
    """Subclasses route requests in `route(method, path, query, body, headers, raw)`, returning (status, body) or
    raising Answer; everything they keep is guarded by `self.lock`. `requests` lists every request that reached the
    server, failed on purpose or not, as (method, path)."""

    def __init__(self, *, username: str = "changeboard", password: str = "standin-password-4f1b",
                 token: str = ""):
        self.username, self.password, self.token = username, password, token
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []
        self._failures: list[tuple[int, str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StandIn":
        handler = self._handler()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
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
            # HTTP/1.0: every connection closes after its answer, so down() leaves none open behind it.
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


class WebhookReceiver(StandIn):
    """A tool behind the generic webhook: takes a POST whose signature verifies with `secret` and whose timestamp
    is recent, applies each idempotency key once (`applied`, in order), and counts the deliveries it dropped as
    already applied (`duplicates`). A bad signature or an old timestamp is a 401, and nothing is applied."""

    TOLERANCE_SECONDS = 300

    def __init__(self, secret: str = "webhook-secret-9d2c"):
        super().__init__()
        self.secret = secret
        self.applied: list[dict] = []
        self.duplicates = 0
        self.refused: list[str] = []

    def authorized(self, header: str) -> bool:
        return True  # the signature is the webhook's credential: checked in route(), which has the body

    def route(self, method, path, query, body, headers, raw):
        timestamp = headers.get(TIMESTAMP_HEADER) or ""
        expected = signature(self.secret, timestamp, raw)
        with self.lock:
            if not hmac.compare_digest(headers.get(SIGNATURE_HEADER) or "", expected):
                self.refused.append("signature")
                raise Answer(401, {"error": "bad signature"})
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.TOLERANCE_SECONDS:
                self.refused.append("timestamp")
                raise Answer(401, {"error": "stale timestamp"})
            if any(entry["idempotency_key"] == headers.get("Idempotency-Key") for entry in self.applied):
                self.duplicates += 1
                return 200, {"status": "already applied"}
            self.applied.append(body)
        return 202, {"status": "accepted"}
