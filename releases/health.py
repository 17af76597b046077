"""Health checks as the engine makes them: an HTTP probe against one target, with a bounded wait; and the
dependency circuit breaker, which asks the CIs a service depends on (the CMDB's walk) whether they are healthy."""

import functools
import ssl
import time
from dataclasses import dataclass

import httpx

from cmdb.models import ConfigurationItem
from cmdb.selectors import impact_walk
from releases.models import HealthCheck

# No probe waits longer than this for an answer, whatever latency ceiling the check sets.
PROBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    latency_ms: float | None = None


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
    return ProbeResult(not problems, f"{check.name} {url}: {verdict}", latency_ms)


@functools.cache
def tls_verification() -> ssl.SSLContext:
    """httpx's default certificate verification, built once per process: loading the CA bundle takes about 25 ms
    here, which every step that probes paid again for its client (tests/bench/bench_deployments.py)."""
    return httpx.create_ssl_context(trust_env=False)


def probe_client() -> httpx.Client:
    """One client per step: connections reused across its probes, redirects not followed, every wait bounded."""
    return httpx.Client(timeout=httpx.Timeout(PROBE_TIMEOUT_SECONDS), follow_redirects=False, trust_env=False,
                        verify=tls_verification())


@dataclass(frozen=True)
class DependencyHealth:
    """What the dependencies with a health URL answered: the unhealthy ones, each with what failed, and the rest."""

    unhealthy: list[str]
    healthy: list[str]


def dependency_health(service: ConfigurationItem) -> DependencyHealth:
    """Probe every CI `service` depends on, however indirectly (the walk the CI page's impact shows), that has a
    health URL: a 2xx is healthy; another status, no answer or a timeout is not."""
    reached = [entry.ci_id for entry in impact_walk(service.pk, direction="dependencies")]
    dependencies = ConfigurationItem.objects.filter(pk__in=reached).exclude(health_url="").order_by("name")
    unhealthy, healthy = [], []
    with probe_client() as client:
        for ci in dependencies:
            try:
                response = client.get(ci.health_url)
            except httpx.HTTPError as exc:
                unhealthy.append(f"{ci.name} ({ci.health_url}) did not answer ({type(exc).__name__}: {exc}).")
                continue
            if 200 <= response.status_code < 300:
                healthy.append(f"{ci.name} ({response.status_code})")
            else:
                unhealthy.append(f"{ci.name} ({ci.health_url}) answered {response.status_code}.")
    return DependencyHealth(unhealthy, healthy)
