"""Metric checks: a PromQL instant query against a Prometheus server's HTTP API, read as Prometheus documents it.

`GET {server}/api/v1/query?query=...` answers `{"status": "success", "data": {"resultType": ..., "result": ...}}`,
or `{"status": "error", "errorType": ..., "error": ...}` (with a 400, 422 or 503). A `vector` result is a list of
series, each `{"metric": {labels}, "value": [<unix time>, "<sample value>"]}`; a `scalar` is `[<unix time>,
"<value>"]`. Sample values are strings because they may be "NaN", "+Inf" or "-Inf". An empty vector (no series
matched, e.g. no requests yet), an error, or anything else is a failed check with its reason: a check that cannot
see is not a healthy one.
"""

import math
from dataclasses import dataclass

import httpx

from releases.models import HealthCheck

# No query waits longer than this for Prometheus; the server is also asked to give up a little earlier.
QUERY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class QueryResult:
    """The query's value (the highest of its series: the worst, for an error rate or a latency), or why none."""

    ok: bool
    value: float | None
    detail: str


def instant_query(server: str, query: str, *, client: httpx.Client) -> QueryResult:
    """Ask `server` (e.g. http://prometheus:9090) `query` now; one value, or the reason there is none."""
    url = server.rstrip("/") + "/api/v1/query"
    try:
        response = client.get(url, params={"query": query, "timeout": f"{QUERY_TIMEOUT_SECONDS - 1:.0f}s"})
    except httpx.HTTPError as exc:
        return QueryResult(False, None, f"no answer from {server} ({type(exc).__name__}: {exc})")
    try:
        body = response.json()
    except ValueError:
        return QueryResult(False, None, f"{server} answered {response.status_code} without JSON")
    if not isinstance(body, dict):
        return QueryResult(False, None, f"{server} answered {response.status_code} with no Prometheus reply")
    if body.get("status") != "success":
        return QueryResult(False, None, f"{server} refused the query ({response.status_code} "
                                        f"{body.get('errorType', 'error')}: {body.get('error', 'no reason given')})")
    data = body.get("data")
    result_type = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    samples: list[tuple[str, object]] = []
    if result_type == "vector" and isinstance(result, list):
        for series in result:
            if isinstance(series, dict) and isinstance(series.get("value"), list) and len(series["value"]) == 2:
                samples.append((_labels(series.get("metric")), series["value"][1]))
            else:
                return QueryResult(False, None, f"{server} answered a series not shaped as Prometheus documents")
    elif result_type == "scalar" and isinstance(result, list) and len(result) == 2:
        samples.append(("", result[1]))
    else:
        return QueryResult(False, None, f"{server} answered a {result_type or 'missing'} result, not a vector or "
                                        f"a scalar")
    if not samples:
        return QueryResult(False, None, "the query matched no series (empty result)")
    values = []
    for labels, raw in samples:
        try:
            value = float(str(raw))
        except ValueError:
            return QueryResult(False, None, f"{server} answered a sample value {raw!r} that is not a number")
        if math.isnan(value):
            return QueryResult(False, None, f"the value{(' of ' + labels) if labels else ''} is NaN (no data to "
                                            f"divide, e.g. no requests)")
        values.append((value, labels))
    value, labels = max(values)
    return QueryResult(True, value, f"{value:g}" + (f" ({labels})" if labels else ""))


def _labels(metric: object) -> str:
    # An aggregation such as sum(...) answers a series without labels: nothing to name.
    if not isinstance(metric, dict) or not metric:
        return ""
    return "{" + ", ".join(f'{name}="{value}"' for name, value in sorted(metric.items())) + "}"


def metric_check(check: HealthCheck, *, client: httpx.Client) -> tuple[bool, float | None, str]:
    """Whether `check`'s query answers within its threshold: (ok, value, one line for the step's log)."""
    answer = instant_query(check.url, check.query, client=client)
    if not answer.ok or answer.value is None:
        return False, None, f"{check.name}: {answer.detail}"
    value = answer.value
    if check.threshold is not None:
        past = value > check.threshold if check.fails_when == HealthCheck.FailsWhen.ABOVE else value < check.threshold
        if past:
            side = "above" if check.fails_when == HealthCheck.FailsWhen.ABOVE else "below"
            return False, value, f"{check.name}: {answer.detail}, {side} its threshold {check.threshold:g}"
    return True, value, f"{check.name}: ok ({answer.detail})"


def query_client() -> httpx.Client:
    """Every wait bounded; no proxy from the environment, no redirect followed."""
    return httpx.Client(timeout=httpx.Timeout(QUERY_TIMEOUT_SECONDS), follow_redirects=False, trust_env=False)
