"""Health checks as the engine makes them: an HTTP probe against one target, with a bounded wait."""

import time
from dataclasses import dataclass

import httpx

from releases.models import HealthCheck

# No probe waits longer than this for an answer, whatever latency ceiling the check sets.
PROBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


def fill(template: str, *, target: str, version: str, digest: str) -> str:
    return template.replace("{target}", target).replace("{version}", version).replace("{digest}", digest)


def http_probe(check: HealthCheck, *, target: str, version: str, digest: str, client: httpx.Client) -> ProbeResult:
    """Whether `target` answers `check`'s URL with its status, body and latency, in one line for the step's log."""
    url = fill(check.url, target=target, version=version, digest=digest)
    expected_body = fill(check.body_contains, target=target, version=version, digest=digest)
    started = time.monotonic()
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"{check.name} {url}: no answer ({type(exc).__name__}: {exc})")
    latency_ms = (time.monotonic() - started) * 1000
    problems = []
    if response.status_code != check.expected_status:
        problems.append(f"status {response.status_code}, expected {check.expected_status}")
    if expected_body and expected_body not in response.text:
        problems.append(f"body lacks {expected_body!r}")
    if check.max_latency_ms is not None and latency_ms > check.max_latency_ms:
        problems.append(f"{latency_ms:.0f} ms, over {check.max_latency_ms} ms")
    verdict = "; ".join(problems) if problems else f"ok ({response.status_code}, {latency_ms:.0f} ms)"
    return ProbeResult(not problems, f"{check.name} {url}: {verdict}")


def probe_client() -> httpx.Client:
    """One client per step: connections reused across its probes, redirects not followed, every wait bounded."""
    return httpx.Client(timeout=httpx.Timeout(PROBE_TIMEOUT_SECONDS), follow_redirects=False, trust_env=False)
