"""The Kubernetes executor: a wave's targets are Deployments (`name`, or `namespace/name`); a step sets the image of
one container in each to `<image_repository>@<digest>` and follows the rollout, as `kubectl rollout status` does,
until every Deployment is done or the step's deadline passes.

The image is set by a JSON patch that first tests the container's name at its index, so it changes that one field
and nothing else, and fails rather than touch another container if the list moved meanwhile. Setting the image a
Deployment runs already changes nothing, so a forward step sent again is safe. A Deployment is done when its
controller has seen the latest spec (observedGeneration >= generation), every desired replica is updated, ready and
available, and no old replica is left. The API server is named by `api_server` (with the bearer token read, when the
step runs, from the environment variable `token_env` names) or by a kubeconfig file on the worker.
"""

import json
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from releases.executors.base import StepContext, StepResult, not_an_object, unknown_settings
from releases.executors.remote import (
    excerpt,
    http_url_error,
    interval_error,
    scrubbed,
    token_from,
    variable_name_error,
    whole_seconds_error,
)

SETTINGS = ("api_server", "kubeconfig", "token_env", "ca_file", "namespace", "container", "image_repository",
            "rollout_timeout_seconds", "poll_interval_seconds")
DEFAULT_TIMEOUT = 600
DEFAULT_POLL_INTERVAL = 2.0
REQUEST_TIMEOUT = (5, 30)  # connect, read: a call to the API server never hangs the step
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a namespace or container name (RFC 1123 label)
SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # a Deployment's name
REPOSITORY = re.compile(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+|[a-z0-9._-]+")


class KubernetesFailure(Exception):
    """The API server could not be asked, or said no; the message names the Deployment and why."""


@dataclass(frozen=True)
class Rollout:
    """What a Deployment says of its rollout: the container's image, its generations and its replica counts."""

    target: str
    image: str
    generation: int
    observed_generation: int
    desired: int
    replicas: int
    updated: int
    ready: int
    available: int
    stalled: str = ""  # the controller's own verdict, once the rollout passed its progressDeadlineSeconds

    @property
    def done(self) -> bool:
        return (self.observed_generation >= self.generation
                and self.updated == self.ready == self.available == self.desired
                and self.replicas <= self.updated)

    def counts(self) -> str:
        return (f"observed generation {self.observed_generation} of {self.generation}, {self.updated} updated, "
                f"{self.ready} ready, {self.available} available of {self.desired} desired replicas "
                f"({self.replicas} in all)")


def deployment_of(target: str, namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of a wave's target, or None when it names no Deployment."""
    space, _, name = target.rpartition("/")
    space = space or namespace
    return (space, name) if LABEL.fullmatch(space) and SUBDOMAIN.fullmatch(name) else None


def _name_error(name: str, value, what: str) -> list[str]:
    if not isinstance(value, str) or not LABEL.fullmatch(value):
        return [f"{name} is required: {what} (lowercase letters, digits and -, at most 63)."]
    return []


def _plain_http_error(url: str) -> list[str]:
    """The token goes to the API server on every call: in the clear only to this machine."""
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return ["api_server must be an https:// URL (http:// only to this machine's loopback)."]
    return []


def _path_error(name: str, value) -> list[str]:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        return [f"{name} must be an absolute path on the worker."]
    return []


def kubernetes_settings_errors(settings) -> list[str]:
    if not isinstance(settings, dict):
        return not_an_object(SETTINGS)
    errors = unknown_settings(settings, SETTINGS)
    server, kubeconfig = settings.get("api_server"), settings.get("kubeconfig")
    if server is None and kubeconfig is None:
        errors.append("api_server (the API server's URL) or kubeconfig (a path on the worker) is required.")
    elif server is not None and kubeconfig is not None:
        errors.append("Give api_server or kubeconfig, not both.")
    elif server is not None:
        errors += http_url_error("api_server", server) or _plain_http_error(server)
        errors += variable_name_error("token_env", settings.get("token_env"), required=True)
        errors += _path_error("ca_file", settings.get("ca_file"))
    else:
        errors += _path_error("kubeconfig", kubeconfig)
        errors += variable_name_error("token_env", settings.get("token_env"), required=False)
        if settings.get("ca_file") is not None:
            errors.append("ca_file goes with api_server; a kubeconfig names its own.")
    errors += _name_error("namespace", settings.get("namespace"), "the namespace of targets named without one")
    errors += _name_error("container", settings.get("container"), "the name of the container whose image is set")
    repository = settings.get("image_repository")
    if not isinstance(repository, str) or not REPOSITORY.fullmatch(repository):
        errors.append("image_repository is required: the image's repository without a tag or digest, such as "
                      "registry.example.com/shop/api.")
    errors += whole_seconds_error("rollout_timeout_seconds", settings.get("rollout_timeout_seconds", DEFAULT_TIMEOUT))
    errors += interval_error("poll_interval_seconds", settings.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL))
    return errors


@dataclass(frozen=True)
class KubernetesExecutor:
    """Sets a wave's Deployments to the build's image (forward) or the previous build's (backward) and follows
    their rollout; tells whether an interrupted rollout already runs the build and is ready."""

    api_server: str
    kubeconfig: str
    token_env: str
    ca_file: str
    namespace: str
    container: str
    image_repository: str
    rollout_timeout_seconds: int
    poll_interval_seconds: float

    @classmethod
    def from_settings(cls, settings: dict) -> "KubernetesExecutor":
        return cls(api_server=settings.get("api_server") or "", kubeconfig=settings.get("kubeconfig") or "",
                   token_env=settings.get("token_env") or "", ca_file=settings.get("ca_file") or "",
                   namespace=settings["namespace"], container=settings["container"],
                   image_repository=settings["image_repository"],
                   rollout_timeout_seconds=settings.get("rollout_timeout_seconds", DEFAULT_TIMEOUT),
                   poll_interval_seconds=settings.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL))

    def forward(self, step: StepContext) -> StepResult:
        return self._roll(step, step.artifact_digest)

    def backward(self, step: StepContext) -> StepResult:
        if not step.previous_digest:
            return StepResult(False, "No earlier build ran here: there is no image to roll back to.")
        return self._roll(step, step.previous_digest)

    def check(self, step: StepContext) -> bool | None:
        """True when every Deployment of the wave runs the build and is done; False when one does not (a forward
        step then sets it, or finds it set, and follows it); None when the API server cannot be asked."""
        token, missing = token_from(self.token_env)
        deployments = self._deployments(step)
        if missing or deployments is None or not DIGEST.fullmatch(step.artifact_digest):
            return None
        image = f"{self.image_repository}@{step.artifact_digest}"
        try:
            with client.ApiClient(self._configuration(token)) as api_client:
                apps = client.AppsV1Api(api_client)
                return all(r.image == image and r.done for r in (self._read(apps, d) for d in deployments))
        except KubernetesFailure:
            return None

    def _deployments(self, step: StepContext) -> list[tuple[str, str]] | None:
        deployments = [d for d in (deployment_of(target, self.namespace) for target in step.targets) if d]
        return deployments if len(deployments) == len(step.targets) else None

    def _configuration(self, token: str) -> client.Configuration:
        configuration = client.Configuration()
        if self.kubeconfig:
            try:
                config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
            except (ConfigException, OSError, ValueError) as exc:
                raise KubernetesFailure(f"The kubeconfig {self.kubeconfig} cannot be used: {excerpt(str(exc))}") \
                    from None
        else:
            configuration.host = self.api_server.rstrip("/")
            configuration.ssl_ca_cert = self.ca_file or None
        if token:
            # The client's name for the bearer token since its version 36 (which reads "authorization" with no prefix).
            configuration.api_key = {"BearerToken": token}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return configuration

    def _roll(self, step: StepContext, digest: str) -> StepResult:
        if not DIGEST.fullmatch(digest):
            return StepResult(False, f"{digest!r} is not an image digest (sha256: and 64 hex digits).")
        deployments = self._deployments(step)
        if deployments is None:
            bad = [t for t in step.targets if deployment_of(t, self.namespace) is None]
            return StepResult(False, f"Not a Deployment (name or namespace/name): {', '.join(bad)}.")
        token, missing = token_from(self.token_env)
        if missing:
            return StepResult(False, missing)
        image = f"{self.image_repository}@{digest}"
        lines: list[str] = []
        try:
            with client.ApiClient(self._configuration(token)) as api_client:
                apps = client.AppsV1Api(api_client)
                for deployment in deployments:
                    lines.append(self._set_image(apps, deployment, image))
                ok = self._follow(apps, deployments, lines)
        except KubernetesFailure as exc:
            lines.append(str(exc))
            ok = False
        return StepResult(ok, scrubbed("\n".join(lines), token))

    def _container_at(self, found: client.V1Deployment) -> int:
        names = [container.name for container in found.spec.template.spec.containers]
        if self.container not in names:
            raise KubernetesFailure(f"{found.metadata.namespace}/{found.metadata.name} has no container "
                                    f"{self.container} (it has {', '.join(names)}).")
        return names.index(self.container)

    def _set_image(self, apps: client.AppsV1Api, deployment: tuple[str, str], image: str) -> str:
        namespace, name = deployment
        found = _call(f"Reading {namespace}/{name}", apps.read_namespaced_deployment, name, namespace)
        index = self._container_at(found)
        if found.spec.template.spec.containers[index].image == image:
            return f"{namespace}/{name}: {self.container} runs {image} already."
        path = f"/spec/template/spec/containers/{index}"
        _call(f"Setting the image of {namespace}/{name}", apps.patch_namespaced_deployment, name, namespace,
              [{"op": "test", "path": f"{path}/name", "value": self.container},
               {"op": "replace", "path": f"{path}/image", "value": image}])
        return f"{namespace}/{name}: {self.container} set to {image}."

    def _read(self, apps: client.AppsV1Api, deployment: tuple[str, str]) -> Rollout:
        namespace, name = deployment
        found = _call(f"Reading {namespace}/{name}", apps.read_namespaced_deployment, name, namespace)
        image = found.spec.template.spec.containers[self._container_at(found)].image
        status = found.status or client.V1DeploymentStatus()
        generation, observed = found.metadata.generation or 0, status.observed_generation or 0
        # A stall reported for an earlier generation says nothing of this one.
        stalled = next((f"{c.reason}: {c.message}" for c in status.conditions or []
                        if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded"), "")
        return Rollout(target=f"{namespace}/{name}", image=image, generation=generation,
                       observed_generation=observed,
                       desired=1 if found.spec.replicas is None else found.spec.replicas,
                       replicas=status.replicas or 0, updated=status.updated_replicas or 0,
                       ready=status.ready_replicas or 0, available=status.available_replicas or 0,
                       stalled=stalled if observed >= generation else "")

    def _follow(self, apps: client.AppsV1Api, deployments: list[tuple[str, str]], lines: list[str]) -> bool:
        started = time.monotonic()
        deadline = started + self.rollout_timeout_seconds
        waiting = list(deployments)
        while True:
            rollouts = {deployment: self._read(apps, deployment) for deployment in waiting}
            for rollout in rollouts.values():
                if rollout.done:
                    lines.append(f"{rollout.target}: rolled out in {time.monotonic() - started:.1f} s, "
                                 f"{rollout.ready} of {rollout.desired} replicas ready.")
            waiting = [deployment for deployment, rollout in rollouts.items() if not rollout.done]
            if not waiting:
                return True
            stalled = [r for r in rollouts.values() if r.stalled and not r.done]
            if stalled:  # Kubernetes gave up on it: waiting longer would not change that
                lines += [f"{r.target} stalled ({excerpt(r.stalled)}): {r.counts()}." for r in stalled]
                return False
            if time.monotonic() + self.poll_interval_seconds >= deadline:
                lines += [f"{r.target} was not ready after {self.rollout_timeout_seconds} s: {r.counts()}."
                          for r in rollouts.values() if not r.done]
                return False
            time.sleep(self.poll_interval_seconds)


def _call(doing: str, method, *args):
    """Call the API server with the request's timeouts; any failure is a KubernetesFailure saying what was done."""
    try:
        return method(*args, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        raise KubernetesFailure(f"{doing}: the API server answered {exc.status} {exc.reason}: "
                                f"{excerpt(_status_message(exc))}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesFailure(f"{doing}: the API server could not be reached: {type(exc).__name__}: "
                                f"{excerpt(str(exc))}") from None
    except ValueError as exc:  # the client could not read the answer as a Deployment
        raise KubernetesFailure(f"{doing}: the answer is not a Deployment: {excerpt(str(exc))}") from None


def _status_message(exc: ApiException) -> str:
    """The message of the API server's Status answer (never the exception's text, which repeats the headers)."""
    try:
        return str(json.loads(exc.body or "").get("message") or "")
    except (ValueError, AttributeError):
        return excerpt(str(exc.body or ""))
