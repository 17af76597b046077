"""A stand-in for a Prometheus server on loopback: answers GET /api/v1/query as Prometheus' HTTP API documents
(`{"status": "success", "data": {"resultType": "vector", "result": [...]}}`, or `{"status": "error", ...}` with its
HTTP status), from what the test tells it, and keeps the queries it was asked. For the engine's tests that drive a
deployment in this process with an answer fixed in advance, and for answers a test cannot get from a real Prometheus
(a timeout on cue, a proxy's HTML, a malformed series); tests/releases/real_prometheus.py runs the real one."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, object]


def vector(*samples: tuple[dict[str, str], str]) -> Answer:
    """A vector result: one series per (labels, sample value as Prometheus writes it)."""
    now = time.time()
    return 200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [now, value]} for labels, value in samples]}}


def error_rate(value: float) -> Answer:
    return vector(({"job": "shop-api"}, repr(value)))


def failure(status: int, error_type: str, error: str) -> Answer:
    return status, {"status": "error", "errorType": error_type, "error": error}


class PrometheusServer:
    """Serves `answer` (or what `answer()` returns, asked at each query) on /api/v1/query; 404 anywhere else."""

    def __init__(self) -> None:
        self.answer: Answer | Callable[[], Answer] = vector()
        self.queries: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                if url.path != "/api/v1/query":
                    self.send_error(404)
                    return
                server.queries.append(parse_qs(url.query).get("query", [""])[0])
                answer = server.answer() if callable(server.answer) else server.answer
                status, body = answer
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/html")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


def serving() -> Iterator[PrometheusServer]:
    """For a fixture: a started server, shut down afterwards."""
    server = PrometheusServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
