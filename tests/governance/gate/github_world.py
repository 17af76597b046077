"""GitHub as the gate tests meet it: webhooks shaped as GitHub's published schema declares them, signed with the
webhook secret, and a local HTTP server standing in for GitHub's API that records the review calls Changeboard
makes."""

import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from governance.gate.github import github_review_send
from governance.models import GitHubReview

WEBHOOK = "/api/v1/github/webhook/"
SECRET = "it-is-a-secret-to-everybody"
APP_ID = "424242"
SHA = "9f2c4a7e1b3d5f6a8c0e2d4b6a8f0c1e3d5b7a9c"
RUN = 8_734_912_310
DEPLOYMENT = 1_436_284_933
# The fields GitHub's schema of the deployment_protection_rule webhook ("requested") declares, and of the
# deployment it carries: the deliveries built here hold no other.
PROTECTION_RULE_FIELDS = {
    "action",
    "environment",
    "event",
    "deployment_callback_url",
    "deployment",
    "pull_requests",
    "repository",
    "organization",
    "installation",
    "sender",
}
DEPLOYMENT_FIELDS = {
    "url",
    "id",
    "node_id",
    "sha",
    "ref",
    "task",
    "payload",
    "original_environment",
    "environment",
    "description",
    "creator",
    "created_at",
    "updated_at",
    "statuses_url",
    "repository_url",
    "transient_environment",
    "production_environment",
    "performed_via_github_app",
}


class GitHubStandIn:
    """Answers the two calls a review needs, as GitHub's API does, and records every request it gets."""

    def __init__(self, public_key_pem: bytes):
        self.requests: list[dict] = []
        self.review_statuses: list[int] = []  # statuses to answer review calls with, in turn; then 204
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stand_in.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(body or b"{}"),
                    }
                )
                if self.path.endswith("/access_tokens"):
                    claims = jwt.decode(
                        self.headers["Authorization"].removeprefix("Bearer "), public_key_pem, algorithms=["RS256"]
                    )
                    self._answer(
                        201 if claims["iss"] == APP_ID else 401,
                        {"token": "ghs_installation_token", "expires_at": "2099-01-01T00:00:00Z"},
                    )
                elif self.headers["Authorization"] != "Bearer ghs_installation_token":
                    self._answer(401, {"message": "Bad credentials"})
                else:
                    status = stand_in.review_statuses.pop(0) if stand_in.review_statuses else 204
                    self._answer(status, {"message": "No pending deployment requests"} if status == 422 else None)

            def do_GET(self):
                stand_in.requests.append({"path": self.path, "headers": {}, "body": None, "method": "GET"})
                self._answer(404, {"message": "Not Found"})

            def _answer(self, status, body):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if status in (301, 302, 303, 307):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reviews(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/deployment_protection_rule")]


@pytest.fixture
def github(settings, monkeypatch, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    stand_in = GitHubStandIn(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    config = {
        "GITHUB_API_URL": stand_in.url,
        "GITHUB_APP_ID": APP_ID,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_APP_PRIVATE_KEY_FILE": str(key_file),
        "GITHUB_REVIEW_RETRY_SECONDS": "0",
    }
    for name, value in config.items():
        setattr(settings, name, int(value) if name == "GITHUB_REVIEW_RETRY_SECONDS" else value)
        monkeypatch.setenv(name, value)  # for the worker processes a test starts
    yield stand_in
    stand_in.server.shutdown()


def deployment_object(
    deployment_id=DEPLOYMENT, repository="octo-bank/payments-api", *, environment="prod", sha=SHA, payload=None
) -> dict:
    """GitHub's deployment of a run, as the protection rule and deployment_status webhooks carry it. The one GitHub
    Actions creates for a job's `environment` has an empty payload."""
    api = f"https://api.github.com/repos/{repository}"
    return {
        "url": f"{api}/deployments/{deployment_id}",
        "id": deployment_id,
        "node_id": "DE_kwDOAbc123",
        "sha": sha,
        "ref": "main",
        "task": "deploy",
        "payload": payload or {},
        "original_environment": environment,
        "environment": environment,
        "description": None,
        "creator": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
        "created_at": "2026-11-27T08:29:00Z",
        "updated_at": "2026-11-27T08:29:00Z",
        "statuses_url": f"{api}/deployments/{deployment_id}/statuses",
        "repository_url": api,
        "transient_environment": False,
        "production_environment": environment.endswith("prod"),
        "performed_via_github_app": None,
    }


def payload(github, *, environment="prod", deployment=..., repository="octo-bank/payments-api", **overrides):
    """A deployment_protection_rule webhook body as GitHub's schema declares it: the commit is the deployment's."""
    owner, name = repository.split("/")
    if deployment is ...:
        deployment = deployment_object(repository=repository, environment=environment)
    return {
        "action": "requested",
        "environment": environment,
        "event": "push",
        "deployment_callback_url": f"{github.url}/repos/{repository}/actions/runs/{RUN}/deployment_protection_rule",
        "deployment": deployment,
        "pull_requests": [],
        "repository": {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": name,
            "full_name": repository,
            "private": True,
            "owner": {"login": owner, "id": 9919, "type": "Organization"},
            "html_url": f"https://github.com/{repository}",
            "default_branch": "main",
        },
        "organization": {"login": owner, "id": 9919, "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk="},
        "installation": {"id": 51_230_447, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNTEyMzA0NDc="},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        **overrides,
    }


def deliver(body, *, secret=SECRET, event="deployment_protection_rule", delivery=None):
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return Client().post(
        WEBHOOK,
        raw,
        content_type="application/json",
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
            "User-Agent": "GitHub-Hookshot/5f3c1a2",
        },
    )


def answer(response) -> GitHubReview:
    """Run the review task here, as a worker would, for the review the webhook recorded."""
    assert response.status_code == 202, response.content
    review = (
        GitHubReview.objects.get(gate_check_id=response.json()["check_id"])
        if response.json()["check_id"]
        else GitHubReview.objects.latest("received_at")
    )
    github_review_send.apply(args=[review.pk])
    review.refresh_from_db()
    return review
