"""A real Prometheus (Debian's `prometheus` package) on loopback, scraping every second a small exporter the test
controls: a service's request counters by status code, in Prometheus' text format. The metric checks ask it as they
would a production server; nothing it does leaves the machine.

Without /usr/bin/prometheus the tests that need it skip, or fail where CHANGEBOARD_REQUIRE_PROMETHEUS is set (CI)."""

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

PROMETHEUS = os.environ.get("PROMETHEUS_PATH", "/usr/bin/prometheus")
SCRAPE_SECONDS = 1
JOB = "shop-api"
# The error rate, in %, of the exporter's traffic, over the last five scrapes.
ERROR_RATE_QUERY = ('100 * sum(rate(http_requests_total{code=~"5.."}[5s])) '
                    '/ sum(rate(http_requests_total[5s]))')
REQUESTS_PER_SECOND = 200.0
BASELINE_ERROR_RATE_PCT = 0.5


class Exporter:
    """A service's /metrics: `http_requests_total` by `code`, grown at each scrape by the traffic since the last one,
    `REQUESTS_PER_SECOND` of which `error_rate_pct` answer 500."""

    def __init__(self, error_rate_pct: float = BASELINE_ERROR_RATE_PCT) -> None:
        self.error_rate_pct = error_rate_pct
        # A service that has been up a while: no counter starts at zero.
        self.totals = {"200": 360_000.0, "500": 1_000.0}
        self.since = time.monotonic()
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def errors(self, rate_pct: float) -> None:
        """From now on, `rate_pct` % of the requests fail."""
        with self.lock:
            self._count()
            self.error_rate_pct = rate_pct

    def _count(self) -> None:
        now = time.monotonic()
        served = REQUESTS_PER_SECOND * (now - self.since)
        self.totals["500"] += served * self.error_rate_pct / 100
        self.totals["200"] += served * (100 - self.error_rate_pct) / 100
        self.since = now

    def exposition(self) -> str:
        with self.lock:
            self._count()
            lines = ["# HELP http_requests_total Requests served, by status code.",
                     "# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{code="{code}"}} {total!r}' for code, total in self.totals.items()]
        return "\n".join(lines) + "\n"


class Prometheus:
    """The server's address (`url`) and the exporter it scrapes."""

    def __init__(self, url: str, exporter: Exporter, process: subprocess.Popen, log: Path) -> None:
        self.url, self.exporter, self.process, self.log = url, exporter, process, log

    def answers(self, query: str) -> list[dict]:
        """The series `query` answers now (none while Prometheus cannot answer yet)."""
        try:
            answer = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=2, trust_env=False).json()
        except (httpx.HTTPError, ValueError):
            return []
        return answer["data"]["result"] if answer.get("status") == "success" else []

    def wait_until(self, what: str, query: str) -> None:
        """Until `query` answers a series, or fail naming `what`; the rest of a test builds on it."""
        deadline = time.monotonic() + 30
        while not self.answers(query):
            assert self.process.poll() is None, f"Prometheus exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"Prometheus did not {what} within 30 s"
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prometheus_or_skip() -> str:
    if shutil.which(PROMETHEUS):
        return PROMETHEUS
    if os.environ.get("CHANGEBOARD_REQUIRE_PROMETHEUS"):
        pytest.fail(f"Prometheus is required for the metric checks' tests but {PROMETHEUS} is missing")
    pytest.skip(f"no Prometheus at {PROMETHEUS} (apt-get install -y prometheus)")


@contextmanager
def running_prometheus(directory: Path) -> Iterator[Prometheus]:
    """Prometheus scraping a fresh exporter, its config and storage under `directory`, once it answers queries (its
    first scrape comes about 5 s later: its discovery sends targets every 5 s); stopped after."""
    binary = prometheus_or_skip()
    exporter = Exporter()
    exporter.thread.start()
    config = directory / "prometheus.yml"
    # Only the exporter is scraped; no rule, no alertmanager, no remote write: Prometheus reaches nothing else.
    config.write_text(f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  scrape_timeout: {SCRAPE_SECONDS}s\n"
                      f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
                      f"      - targets: ['{exporter.target}']\n")
    port = free_port()
    log = directory / "prometheus.log"
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}", exporter, process, log)
    try:
        server.wait_until("answer", "vector(1)")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        exporter.httpd.shutdown()
        exporter.httpd.server_close()


@pytest.fixture(scope="module")
def prometheus_server(tmp_path_factory) -> Iterator[Prometheus]:
    """One Prometheus per test module, as it takes about 6 s to scrape a new target; module-scoped, it starts before
    a test's other fixtures and scrapes while they are made."""
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def prometheus(prometheus_server: Prometheus) -> Prometheus:
    """The module's Prometheus, its exporter back at 0.5 % errors and Prometheus seeing only that over the error
    rate's window: scraped at least twice, and any spike an earlier test made gone from it."""
    prometheus_server.exporter.errors(BASELINE_ERROR_RATE_PCT)
    prometheus_server.wait_until(f"see the baseline error rate of {BASELINE_ERROR_RATE_PCT} %",
                                 f"abs({ERROR_RATE_QUERY} - {BASELINE_ERROR_RATE_PCT}) < 0.01")
    return prometheus_server
