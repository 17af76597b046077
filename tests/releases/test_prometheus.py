"""The PromQL client against a local server answering as Prometheus' /api/v1/query documents: a vector's value
(the worst series), a scalar, and every way of not answering (an empty result, an error status, no JSON, no
server, NaN) as a failed check with its reason."""

import socket

import pytest
from django.core.exceptions import ValidationError

from releases.models import HealthCheck
from releases.prometheus import instant_query, metric_check, query_client
from tests.releases.prometheus_server import error_rate, failure, serving, vector

QUERY = '100 * sum by (job) (rate(http_requests_total{code=~"5.."}[1m])) / sum by (job) (rate(http_requests_total[1m]))'


@pytest.fixture
def prometheus():
    yield from serving()


def ask(server, query: str = QUERY):
    with query_client() as client:
        return instant_query(server.url, query, client=client)


def test_a_vector_answers_its_highest_series_and_the_query_is_sent_as_given(prometheus):
    prometheus.answer = vector(({"job": "shop-api", "region": "eu"}, "0.5"), ({"job": "shop-api", "region": "us"},
                                                                            "3.25"))
    result = ask(prometheus)
    assert (result.ok, result.value) == (True, 3.25)
    assert result.detail == '3.25 ({job="shop-api", region="us"})'
    assert prometheus.queries == [QUERY]


def test_a_scalar_is_a_value_too(prometheus):
    prometheus.answer = (200, {"status": "success", "data": {"resultType": "scalar", "result": [1700000000.5, "42"]}})
    assert ask(prometheus, "scalar(42)").value == 42.0


def test_an_empty_result_is_a_failed_check_saying_so(prometheus):
    prometheus.answer = vector()
    result = ask(prometheus)
    assert (result.ok, result.value) == (False, None)
    assert result.detail == "the query matched no series (empty result)"


def test_an_error_response_is_a_failed_check_with_prometheus_reason(prometheus):
    prometheus.answer = failure(400, "bad_data", 'invalid parameter "query": 1:5: parse error: unexpected "}"')
    result = ask(prometheus, "rate(}")
    assert not result.ok
    assert result.detail == (f'{prometheus.url} refused the query (400 bad_data: invalid parameter "query": 1:5: '
                             f'parse error: unexpected "}}")')


def test_a_timed_out_query_is_a_failed_check(prometheus):
    prometheus.answer = failure(503, "timeout", "query timed out in expression evaluation")
    assert ask(prometheus).detail.endswith("refused the query (503 timeout: query timed out in expression evaluation)")


@pytest.mark.parametrize(("answer", "reason"), [
    ((502, "<html>Bad Gateway</html>"), "answered 502 without JSON"),
    ((200, {"status": "success", "data": {"resultType": "matrix", "result": []}}), "a matrix result"),
    ((200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}),
     "not shaped as Prometheus documents"),
    (vector(({}, "NaN")), "is NaN"),
    (vector(({}, "lots")), "'lots' that is not a number"),
])
def test_an_answer_that_is_not_a_value_is_a_failed_check(prometheus, answer, reason):
    prometheus.answer = answer
    result = ask(prometheus)
    assert not result.ok and reason in result.detail


def test_no_server_is_a_failed_check():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with query_client() as client:
        result = instant_query(f"http://127.0.0.1:{port}", "up", client=client)
    assert not result.ok and result.detail.startswith(f"no answer from http://127.0.0.1:{port} (ConnectError")


@pytest.mark.parametrize(("fails_when", "value", "ok"), [("above", 2.5, False), ("above", 0.5, True),
                                                        ("below", 0.5, False), ("below", 2.5, True)])
def test_a_metric_check_compares_the_value_with_its_threshold(prometheus, fails_when, value, ok):
    prometheus.answer = error_rate(value)
    check = HealthCheck(name="errors", kind="metric", url=prometheus.url + "/", query=QUERY, threshold=1.0,
                        fails_when=fails_when)
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
