"""The process log has a JSON line per request, with the request's id, and never the query string."""

import pytest

pytestmark = pytest.mark.django_db


def test_each_request_is_one_json_line_with_its_id_and_no_query_string(client, requester, json_log):
    client.force_login(requester)
    response = client.get("/changes/?q=secret-looking-text", HTTP_X_REQUEST_ID="req-4f2a9c")
    assert response.status_code == 200
    [line] = json_log.events("request")
    assert line == {**line, "method": "GET", "path": "/changes/", "status": 200, "user": "requester",
                    "request_id": "req-4f2a9c", "level": "info", "logger": "changeboard.request"}
    assert line["duration_ms"] >= 0 and line["timestamp"].endswith("Z")
    assert "secret-looking-text" not in str(json_log)


def test_a_request_refused_before_any_view_is_logged_too(client, json_log):
    response = client.get("/changes/?q=a%00b")
    assert response.status_code == 400
    [line] = json_log.events("request")
    assert (line["path"], line["status"], line["user"]) == ("/changes/", 400, None)


def test_lines_logged_while_a_request_runs_carry_its_id(client, requester, json_log):
    client.force_login(requester)
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-77")
    refused = json_log.events("Not Found: /no-such-page/")
    assert refused and refused[0]["request_id"] == "req-77" and refused[0]["logger"] == "django.request"
