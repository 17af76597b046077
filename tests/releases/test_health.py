"""The HTTP probe: status, a piece of the body, a latency ceiling, and no answer at all, each said in one line."""

import ssl
import time

import httpx

from releases.health import http_probe, probe_client
from releases.models import HealthCheck

CHECK = HealthCheck(name="health", phase="smoke", url="http://{target}/health?build={digest}", expected_status=200,
                    body_contains="version {version}", max_latency_ms=200)


def probe(handler, check: HealthCheck = CHECK):
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return http_probe(check, target="web-1:8080", version="1.1.0", digest="sha256:abc", client=client)


def test_a_healthy_target_passes_and_the_placeholders_are_filled_in():
    asked = []

    def handler(request):
        asked.append(str(request.url))
        return httpx.Response(200, text="ok, version 1.1.0")

    result = probe(handler)
    assert result.ok and result.detail.startswith("health http://web-1:8080/health?build=sha256:abc: ok (200, ")
    assert asked == ["http://web-1:8080/health?build=sha256:abc"]


def test_a_wrong_status_and_a_missing_body_are_both_named():
    result = probe(lambda request: httpx.Response(503, text="version 1.0.0"))
    assert not result.ok
    assert result.detail.endswith("status 503, expected 200; body lacks 'version 1.1.0'")


def test_an_answer_slower_than_the_ceiling_fails():
    def slow(request):
        time.sleep(0.3)
        return httpx.Response(200, text="version 1.1.0")

    result = probe(slow)
    assert not result.ok and "over 200 ms" in result.detail


def test_no_answer_fails_with_the_reason():
    def refused(request):
        raise httpx.ConnectError("connection refused", request=request)

    result = probe(refused)
    assert not result.ok and "no answer (ConnectError: connection refused)" in result.detail


def test_probe_clients_share_one_tls_context_that_verifies_certificates():
    # httpx keeps the context on its connection pool; building one per client cost each probing step 25 ms.
    with probe_client() as first, probe_client() as second:
        contexts = [client._transport._pool._ssl_context for client in (first, second)]
    assert contexts[0] is contexts[1]
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED and contexts[0].check_hostname
