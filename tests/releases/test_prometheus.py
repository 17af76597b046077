"""The PromQL client against a real Prometheus scraping a service's request counters: a vector's value (the worst
series), a scalar, the error rate of what was scraped, and every way of not answering (an empty result, a refused
query, NaN, no server) as a failed check with its reason. A timeout, which a test cannot make a real Prometheus give on
cue, and answers only something in front of one gives (a proxy's HTML, a malformed series) come from a stand-in."""

import pytest
from django.core.exceptions import ValidationError

from releases.models import HealthCheck
from releases.prometheus import instant_query, metric_check, query_client
from tests.releases.prometheus_server import failure, serving, vector
from tests.releases.real_prometheus import ERROR_RATE_QUERY, JOB, free_port


@pytest.fixture
def stand_in():
    yield from serving()


def ask(server, query: str):
    with query_client() as client:
        return instant_query(server.url, query, client=client)


def labelled(value: float, **labels: str) -> str:
    """PromQL for a one-series vector of `value` with `labels`."""
    query = f"vector({value})"
    for name, label in labels.items():
        query = f'label_replace({query}, "{name}", "{label}", "", "")'
    return query


def test_a_vector_answers_its_highest_series(prometheus):
    result = ask(prometheus, f'{labelled(0.5, job="shop-api", region="eu")} '
                             f'or {labelled(3.25, job="shop-api", region="us")}')
    assert (result.ok, result.value) == (True, 3.25)
    assert result.detail == '3.25 ({job="shop-api", region="us"})'


def test_the_error_rate_of_the_scraped_requests_is_answered(prometheus):
    result = ask(prometheus, ERROR_RATE_QUERY)
    assert result.ok and result.value == pytest.approx(0.5)  # the exporter's 0.5 % of requests answering 500
    assert result.detail == f"{result.value:g}"  # one series without labels, nothing to name
    by_code = ask(prometheus, "sum by (code) (rate(http_requests_total[5s]))")
    assert by_code.ok and by_code.detail.endswith('({code="200"})')  # the busiest series


def test_a_scalar_is_a_value_too(prometheus):
    assert ask(prometheus, "scalar(vector(42))").value == 42.0


def test_an_empty_result_is_a_failed_check_saying_so(prometheus):
    result = ask(prometheus, f'http_requests_total{{job="{JOB}", code="418"}}')
    assert (result.ok, result.value) == (False, None)
    assert result.detail == "the query matched no series (empty result)"


def test_a_refused_query_is_a_failed_check_with_prometheus_reason(prometheus):
    result = ask(prometheus, "rate(}")
    assert not result.ok
    assert result.detail.startswith(f'{prometheus.url} refused the query (400 bad_data: invalid parameter "query": ')
    assert "parse error" in result.detail


@pytest.mark.parametrize(("query", "reason"), [
    ("vector(0) / vector(0)", "the value is NaN (no data to divide, e.g. no requests)"),
    ("http_requests_total[5s]", "answered a matrix result, not a vector or a scalar"),
    ('"shop-api"', "answered a string result, not a vector or a scalar"),
])
def test_an_answer_that_is_not_a_value_is_a_failed_check(prometheus, query, reason):
    result = ask(prometheus, query)
    assert not result.ok and result.detail.endswith(reason)


@pytest.mark.parametrize(("answer", "reason"), [
    ((502, "<html>Bad Gateway</html>"), "answered 502 without JSON"),
    ((200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}),
     "not shaped as Prometheus documents"),
    (vector(({}, "lots")), "'lots' that is not a number"),
    (failure(503, "timeout", "query timed out in expression evaluation"),
     "refused the query (503 timeout: query timed out in expression evaluation)"),
])
def test_a_timeout_or_an_answer_not_from_prometheus_is_a_failed_check(stand_in, answer, reason):
    stand_in.answer = answer
    result = ask(stand_in, "up")
    assert not result.ok and reason in result.detail


def test_no_server_is_a_failed_check():
    port = free_port()
    with query_client() as client:
        result = instant_query(f"http://127.0.0.1:{port}", "up", client=client)
    assert not result.ok and result.detail.startswith(f"no answer from http://127.0.0.1:{port} (ConnectError")


@pytest.mark.parametrize(("fails_when", "value", "ok"), [("above", 2.5, False), ("above", 0.5, True),
                                                        ("below", 0.5, False), ("below", 2.5, True)])
def test_a_metric_check_compares_the_value_with_its_threshold(prometheus, fails_when, value, ok):
    check = HealthCheck(name="errors", kind="metric", url=prometheus.url + "/", query=labelled(value, job="shop-api"),
                        threshold=1.0, fails_when=fails_when)
    with query_client() as client:
        passed, measured, line = metric_check(check, client=client)
    assert (passed, measured) == (ok, value)
    assert line == (f'errors: ok ({value:g} ({{job="shop-api"}}))' if ok else
                    f'errors: {value:g} ({{job="shop-api"}}), {fails_when} its threshold 1')


def test_a_metric_check_names_its_server_by_an_http_url_and_has_a_query():
    with pytest.raises(ValidationError) as refused:
        HealthCheck(name="errors", phase="watch", kind="metric", url="prometheus:9090", query=" ").clean()
    assert set(refused.value.message_dict) == {"url", "query"}
    HealthCheck(name="errors", phase="watch", kind="metric", url="https://prometheus:9090", query="up").clean()
