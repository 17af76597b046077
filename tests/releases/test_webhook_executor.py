"""The webhook executor against a small CD system on loopback: a start returns a job, the job is polled to its end or
the step's deadline, the same idempotency key never starts a second job, the token goes only in the bearer header,
and whatever goes wrong (a 500, a hang, a refused connection, HTML) fails the step with a short output. No
database."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from releases.executors import StepContext, settings_errors
from releases.executors.webhook import WebhookExecutor

TOKEN = "cd-token-7c1e9f"
STEP = StepContext(deployment="DEP0000042", environment="staging", artifact_digest="sha256:" + "a" * 64,
                   previous_digest="sha256:" + "b" * 64, wave="eu-west", targets=("web-1", "web-2"),
                   idempotency_key="DEP0000042-004-rollout")


class CdSystem:
    """A CD system's HTTP API: POST /start/<path> starts a job (or, for a key it has seen, answers the job that key
    started), GET /jobs/<id> says its state, GET /lookup?key= finds a job by key. What the next job does is set by
    `behaviour`: succeed after three polls, fail, or never end. A few paths misbehave on purpose."""

    def __init__(self):
        self.behaviour = "succeed"
        self.jobs: dict[str, dict] = {}
        self.by_key: dict[str, str] = {}
        self.starts: list[dict] = []
        self.authorizations: list[str | None] = []
        cd = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def answer(self, status: int, body, content_type: str = "application/json", headers=()):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                cd.authorizations.append(self.headers.get("Authorization"))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                path = urlsplit(self.path).path
                if path == "/broken":
                    return self.answer(500, ("internal error while handling " + str(self.headers.get(
                        "Authorization")) + " " + "x" * 5000).encode(), "text/plain")
                if path == "/html":
                    return self.answer(200, b"<html>Login</html>", "text/html")
                if path == "/hang":
                    time.sleep(3)
                    return self.answer(200, {})
                if path == "/moved":
                    return self.answer(307, {}, headers=[("Location", "http://203.0.113.9/steal")])
                with lock:
                    key = self.headers.get("Idempotency-Key")
                    cd.starts.append({"path": self.path, "key": key, "body": body})
                    if key in cd.by_key:
                        return self.answer(200, {"job": {"id": cd.by_key[key]}})
                    job = str(len(cd.jobs) + 1)
                    cd.jobs[job] = {"behaviour": cd.behaviour, "polls": 0}
                    cd.by_key[key] = job
                return self.answer(201, {"job": {"id": job}})

            def do_GET(self):
                cd.authorizations.append(self.headers.get("Authorization"))
                parts = urlsplit(self.path)
                if parts.path == "/lookup":
                    job = cd.by_key.get(parse_qs(parts.query)["key"][0])
                    return self.answer(404, {"message": "no such job"}) if job is None else \
                        self.answer(200, cd.state(job, poll=False))
                job = parts.path.rsplit("/", 1)[-1]
                if job not in cd.jobs:
                    return self.answer(404, {"message": "no such job"})
                return self.answer(200, cd.state(job, poll=True))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def state(self, job: str, *, poll: bool) -> dict:
        record = self.jobs[job]
        record["polls"] += poll
        behaviour, polls = record["behaviour"], record["polls"]
        if behaviour == "exit-code":
            return {"status": {"exit": 0, "done": True}}
        if behaviour == "succeed":
            phase = "Succeeded" if polls >= 3 else "Running" if polls > 1 else None
        elif behaviour == "fail":
            phase = "Failed" if polls >= 2 else "Running"
        else:
            phase = "Running"
        body = {"status": {"phase": phase}}
        if phase == "Failed":
            body["status"]["message"] = "health check degraded on web-2"
        return body


@pytest.fixture
def cd(monkeypatch):
    monkeypatch.setenv("CB_TEST_CD_TOKEN", TOKEN)
    system = CdSystem()
    yield system
    system.httpd.shutdown()
    system.httpd.server_close()


def settings_for(base: str, **changes) -> dict:
    settings = {
        "forward_url": base + "/start/forward?wave={wave}&digest={digest}",
        "backward_url": base + "/start/backward?wave={wave}&digest={previous_digest}",
        "status_url": base + "/jobs/{job}",
        "lookup_url": base + "/lookup?key={key}",
        "job_id_path": "job.id",
        "state_path": "status.phase",
        "succeeded_states": ["Succeeded"],
        "failed_states": ["Failed", "Error"],
        "poll_interval_seconds": 0.1,
        "timeout_seconds": 20,
        "token_env": "CB_TEST_CD_TOKEN",
    } | changes
    return {name: value for name, value in settings.items() if value is not None}


def executor(cd: CdSystem, **changes) -> WebhookExecutor:
    settings = settings_for(cd.url, **changes)
    assert settings_errors("webhook", settings) == []
    return WebhookExecutor.from_settings(settings)


def test_a_job_that_succeeds_after_a_few_polls_succeeds_the_step(cd):
    result = executor(cd).forward(STEP)
    assert result.ok, result.output
    assert result.output.splitlines() == [
        "Started job 1 (POST " + cd.url + "/start/forward?wave=eu-west&digest=sha256%3A" + "a" * 64
        + ", Idempotency-Key DEP0000042-004-rollout).",
        "Job 1: no state yet.", "Job 1: Running.", "Job 1: Succeeded."]
    assert cd.jobs["1"]["polls"] == 3
    assert cd.starts == [{"path": "/start/forward?wave=eu-west&digest=sha256%3A" + "a" * 64,
                          "key": "DEP0000042-004-rollout",
                          "body": {"deployment": "DEP0000042", "digest": STEP.artifact_digest,
                                   "previous_digest": STEP.previous_digest, "environment": "staging",
                                   "wave": "eu-west", "targets": ["web-1", "web-2"],
                                   "idempotency_key": "DEP0000042-004-rollout"}}]


def test_the_token_arrives_only_as_the_bearer_header_and_never_in_the_output(cd):
    result = executor(cd).forward(STEP)
    assert cd.authorizations and set(cd.authorizations) == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.output
    assert TOKEN not in json.dumps(cd.starts)


def test_placeholders_are_filled_in_as_whole_url_encoded_values(cd):
    step = StepContext(**{**vars(STEP), "wave": "eu/west&admin=1", "targets": ("a b", "c")})
    result = executor(cd, forward_url=cd.url + "/start/{wave}?targets={targets}&key={key}").forward(step)
    assert result.ok, result.output
    path = cd.starts[0]["path"]
    assert path == "/start/eu%2Fwest%26admin%3D1?targets=a%20b%2Cc&key=DEP0000042-004-rollout"
    assert unquote(urlsplit(path).path) == "/start/eu/west&admin=1"
    assert parse_qs(urlsplit(path).query) == {"targets": ["a b,c"], "key": ["DEP0000042-004-rollout"]}


def test_backward_starts_the_backward_job_with_the_previous_digest(cd):
    result = executor(cd).backward(STEP)
    assert result.ok, result.output
    assert cd.starts[0]["path"] == "/start/backward?wave=eu-west&digest=sha256%3A" + "b" * 64


def test_a_failed_job_fails_the_step_with_what_the_cd_system_said(cd):
    cd.behaviour = "fail"
    result = executor(cd).forward(STEP)
    assert not result.ok
    assert "Job 1: Failed." in result.output
    assert "health check degraded on web-2" in result.output


def test_a_job_that_never_ends_fails_the_step_at_its_timeout(cd):
    cd.behaviour = "never"
    began = time.monotonic()
    result = executor(cd, timeout_seconds=1).forward(STEP)
    assert time.monotonic() - began < 5
    assert not result.ok
    assert result.output.splitlines()[-1] == ("Job 1 did not end within 1 s (last state: Running); it may still run "
                                              "in the CD system.")
    assert 2 <= cd.jobs["1"]["polls"] <= 12


def test_a_start_sent_again_with_the_same_key_follows_the_job_the_first_one_started(cd):
    first = executor(cd).forward(STEP)
    again = executor(cd).forward(STEP)
    assert first.ok and again.ok
    assert [start["key"] for start in cd.starts] == ["DEP0000042-004-rollout"] * 2
    assert list(cd.jobs) == ["1"]
    assert again.output.startswith("Started job 1 ")


def test_a_server_error_fails_the_step_with_a_bounded_output_without_the_token(cd):
    result = executor(cd, forward_url=cd.url + "/broken").forward(STEP)
    assert not result.ok
    assert result.output.startswith(f"POST {cd.url}/broken answered 500: internal error while handling Bearer "
                                    "[token] xxx")
    assert TOKEN not in result.output
    assert len(result.output) < 700


@pytest.mark.parametrize(("path", "said"), [
    ("/html", "answered 200 with a body that is not JSON: <html>Login</html>"),
    ("/hang", "no answer within 1 s."),
    ("/moved", "answered 307"),
])
def test_an_answer_that_is_no_answer_fails_the_step_and_says_why(cd, path, said):
    began = time.monotonic()
    result = executor(cd, forward_url=cd.url + path, timeout_seconds=1).forward(STEP)
    assert time.monotonic() - began < 5
    assert not result.ok
    assert said in result.output


def test_a_cd_system_that_is_not_there_fails_the_step(cd):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = executor(cd, forward_url=f"http://127.0.0.1:{port}/start").forward(STEP)
    assert not result.ok
    assert result.output.startswith(f"POST http://127.0.0.1:{port}/start: ConnectError")


@pytest.mark.parametrize("job_id_path", ["job.number", "job"])
def test_a_start_answer_without_a_job_id_fails_the_step(cd, job_id_path):
    result = executor(cd, job_id_path=job_id_path).forward(STEP)
    assert not result.ok
    assert result.output.startswith(f'The start answer has no job id at {job_id_path}: {{"job": {{"id": "1"}}}}')


@pytest.mark.parametrize(("state_path", "states"), [("status", ["Succeeded"]), ("status.missing", ["Succeeded"])])
def test_a_status_answer_without_a_state_at_its_path_fails_the_step(cd, state_path, states):
    result = executor(cd, state_path=state_path, succeeded_states=states).forward(STEP)
    assert not result.ok
    assert result.output.splitlines()[-1] == f'GET {cd.url}/jobs/1 answered no state at {state_path}: ' \
                                             '{"status": {"phase": null}}'


def test_a_state_that_is_a_number_or_a_boolean_is_compared_as_json_writes_it(cd):
    cd.behaviour = "exit-code"
    assert executor(cd, state_path="status.exit", succeeded_states=["0"], failed_states=["1"]).forward(STEP).ok
    assert executor(cd, state_path="status.done", succeeded_states=["true"], failed_states=["false"]).check(STEP)


def test_without_its_token_the_step_fails_naming_the_variable_and_calls_nothing(cd, monkeypatch):
    monkeypatch.delenv("CB_TEST_CD_TOKEN")
    result = executor(cd).forward(STEP)
    assert not result.ok
    assert result.output == ("The environment variable CB_TEST_CD_TOKEN, which should hold the token, is not set on "
                             "the worker.")
    assert cd.authorizations == []


def test_check_asks_the_cd_system_by_idempotency_key(cd):
    run = executor(cd)
    assert run.check(STEP) is False  # no job for this key: the rollout never started
    cd.behaviour = "never"
    executor(cd, timeout_seconds=1).forward(STEP)
    assert run.check(STEP) is False  # it still runs: a forward step sent again follows it
    other = StepContext(**{**vars(STEP), "idempotency_key": "DEP0000042-009-rollout"})
    cd.behaviour = "succeed"
    assert run.forward(other).ok
    assert run.check(other) is True


def test_check_cannot_tell_without_a_lookup_url_or_when_the_cd_system_fails(cd):
    assert executor(cd, lookup_url=None).check(STEP) is None
    assert executor(cd, lookup_url=cd.url + "/lookup-gone/{key}").check(STEP) is False  # a 404 is "no such job"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert executor(cd, lookup_url=f"http://127.0.0.1:{port}/lookup?key={{key}}").check(STEP) is None


def test_good_settings_have_no_errors():
    assert settings_errors("webhook", settings_for("http://127.0.0.1:8080")) == []
    minimal = {"forward_url": "https://argocd.example.com/api/v1/applications/shop-{environment}/sync",
               "backward_url": "https://argocd.example.com/api/v1/applications/shop-{environment}/rollback",
               "status_url": "https://argocd.example.com/api/v1/applications/shop-{environment}?job={job}",
               "job_id_path": "metadata.name", "state_path": "status.operationState.phase",
               "succeeded_states": ["Succeeded"], "failed_states": ["Failed", "Error"]}
    assert settings_errors("webhook", minimal) == []


@pytest.mark.parametrize(("changes", "error"), [
    ({"forward_url": None}, "forward_url is required"),
    ({"backward_url": "ftp://cd.example.com/rollback"}, "backward_url must be an http:// or https:// URL"),
    ({"forward_url": "file:///etc/passwd"}, "forward_url must be an http:// or https:// URL"),
    ({"forward_url": "https://{environment}.cd.example.com/start"}, "forward_url may have placeholders in its path"),
    ({"forward_url": "https://admin:pw@cd.example.com/start"}, "forward_url must not hold credentials"),
    ({"forward_url": "https://cd.example.com/start/{target}"}, "forward_url names unknown placeholders: target"),
    ({"status_url": "https://cd.example.com/jobs/latest"}, "status_url must hold the placeholder {job}"),
    ({"status_url": None}, "status_url is required"),
    ({"lookup_url": "https://cd.example.com/jobs"}, "lookup_url must hold the placeholder {key}"),
    ({"lookup_url": "https://cd.example.com/jobs/{job}"}, "lookup_url names unknown placeholders: job"),
    ({"job_id_path": ""}, "job_id_path is required"),
    ({"state_path": "status..phase"}, "state_path is required"),
    ({"succeeded_states": []}, "succeeded_states is required"),
    ({"failed_states": "Failed"}, "failed_states is required"),
    ({"failed_states": ["Failed", "Succeeded"]}, "succeeded_states and failed_states both hold Succeeded"),
    ({"poll_interval_seconds": 0}, "poll_interval_seconds must be a number of seconds from 0.1 to 300"),
    ({"timeout_seconds": 7200}, "timeout_seconds must be a whole number of seconds from 1 to 3600"),
    ({"timeout_seconds": 1.5}, "timeout_seconds must be a whole number"),
    ({"token_env": "Bearer abc.def"}, "token_env must name an environment variable"),
    ({"token": "abc"}, "Unknown settings: token"),
])
def test_bad_settings_are_named(changes, error):
    errors = settings_errors("webhook", settings_for("https://cd.example.com", **changes))
    assert any(error in message for message in errors), errors


def test_settings_that_are_not_an_object_are_refused():
    assert settings_errors("webhook", ["https://cd.example.com"])[0].startswith("The settings are an object")
