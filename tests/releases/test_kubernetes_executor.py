"""The Kubernetes executor against kmock's in-memory Kubernetes API on loopback, through the official client: the
image set by digest in the named container only, the rollout followed until the controller says it is done, a rollout
that never becomes ready failing at its deadline with its counts, the rollback to the previous digest, check(), and a
whole deployment driven through the engine.

kmock plays the API server, not its controllers, so the test plays them: the API server's part (a spec change bumps
metadata.generation) as a reaction to each PATCH, and the Deployment controller's part (after a moment, the status
catches up with the generation and every replica is updated, ready and available) as a task beside the server. A
Deployment given a broken image never gets there: one new replica, not ready, beside the old ones.
"""

import asyncio
import socket
import threading
import time

import kmock
import pytest

from releases.executors import StepContext, settings_errors
from releases.executors.kubernetes import KubernetesExecutor
from releases.models import DeploymentPlan, HealthCheck, PlanWave
from tests.governance.deployments.world import deploy_world, drive, start, steps_of  # noqa: F401 (its fixture)

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
TOKEN = "k8s-token-4be1d0"
REPOSITORY = "registry.example.com/shop/api"
NEW, OLD = "sha256:" + "a" * 64, "sha256:" + "b" * 64
STEP = StepContext(deployment="DEP0000042", environment="staging", artifact_digest=NEW, previous_digest=OLD,
                   wave="eu-west", targets=("web-eu", "payments/web-pay"), idempotency_key="DEP0000042-004-rollout")


class Cluster:
    """kmock's Kubernetes emulator served on loopback from a thread of its own, with the controllers played."""

    def __init__(self, *, rollout_seconds: float = 0.5):
        self.rollout_seconds = rollout_seconds
        self.broken: set[tuple[str, str]] = set()  # (Deployment, image) whose new pods never become ready
        self.stalled: set[tuple[str, str]] = set()  # the same, past the Deployment's progressDeadlineSeconds
        self.seen: dict[tuple[str | None, str], tuple[int, float]] = {}
        self._up = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self.thread.start()
        assert self._up.wait(10), "kmock did not start"

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator, self.loop = emulator, asyncio.get_running_loop()
            self.url = str(server.url).rstrip("/")
            emulator[kmock.action.UPDATE, DEPLOYMENTS] << self._new_generation
            controller = asyncio.create_task(self._control())
            self._up.set()
            await self._stop.wait()
            controller.cancel()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    def _new_generation(self, request) -> None:
        """The API server's part: a changed spec is a new generation. kmock has applied the patch already; raising
        NotImplementedError hands the request on to its own handler, which answers with the stored object."""
        stored = self.emulator.objects[DEPLOYMENTS, request.namespace, request.name]
        stored["metadata"] = {**stored["metadata"], "generation": stored["metadata"]["generation"] + 1}
        raise NotImplementedError

    async def _control(self) -> None:
        """The Deployment controller's part: a new generation is rolled out `rollout_seconds` after it is seen."""
        while True:
            for (_, namespace, name), stored in list(self.emulator.objects.items()):
                if stored.deleted:
                    continue
                generation = stored["metadata"]["generation"]
                if stored["status"].get("observedGeneration", 0) >= generation:
                    continue
                first_seen = self.seen.setdefault((namespace, name), (generation, time.monotonic()))
                if first_seen[0] != generation:
                    self.seen[(namespace, name)] = first_seen = (generation, time.monotonic())
                if time.monotonic() - first_seen[1] < self.rollout_seconds:
                    continue
                replicas = stored["spec"]["replicas"]
                image = self.image(namespace, name)
                if (name, image) in self.broken | self.stalled:
                    status = {"observedGeneration": generation, "replicas": replicas + 1, "updatedReplicas": 1,
                              "readyReplicas": replicas, "availableReplicas": replicas}
                    if (name, image) in self.stalled:
                        status["conditions"] = [{"type": "Progressing", "status": "False",
                                                 "reason": "ProgressDeadlineExceeded",
                                                 "message": f'ReplicaSet "{name}-5d9c" has timed out progressing.'}]
                    stored["status"] = status  # observed, and stuck: it stays this way
                    continue
                stored["status"] = {"observedGeneration": generation, "replicas": replicas,
                                    "updatedReplicas": replicas, "readyReplicas": replicas,
                                    "availableReplicas": replicas}
            await asyncio.sleep(0.05)

    def call(self, function):
        """Run `function` on the server's own loop (the stored objects are the loop's), and return its result."""
        async def run():
            return function()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def add(self, name: str, *, namespace: str = "shop", digest: str = OLD, replicas: int = 3,
            containers: tuple[str, ...] = ("sidecar", "app")) -> None:
        images = {"sidecar": "envoyproxy/envoy:v1.31", "app": f"{REPOSITORY}@{digest}"}
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": c, "image": images.get(c, "busybox")}
                                                          for c in containers]}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": replicas, "availableReplicas": replicas},
        }
        self.call(lambda: self.emulator.objects.__setitem__((DEPLOYMENTS, namespace, name), deployment))

    def deployment(self, namespace: str, name: str) -> dict:
        return self.call(lambda: self.emulator.objects[DEPLOYMENTS, namespace, name].raw)

    def image(self, namespace: str | None, name: str, container: str = "app") -> str:
        stored = self.emulator.objects[DEPLOYMENTS, namespace, name]
        return next(c["image"] for c in stored["spec"]["template"]["spec"]["containers"] if c["name"] == container)

    def images(self, namespace: str, name: str) -> dict[str, str]:
        containers = self.deployment(namespace, name)["spec"]["template"]["spec"]["containers"]
        return {c["name"]: c["image"] for c in containers}

    def requests(self) -> list:
        return self.call(lambda: list(self.emulator))


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setenv("CB_TEST_K8S_TOKEN", TOKEN)
    running = Cluster()
    running.add("web-eu")
    running.add("web-pay", namespace="payments", replicas=2)
    yield running
    running.stop()


def settings_for(url: str, **changes) -> dict:
    settings = {"api_server": url, "token_env": "CB_TEST_K8S_TOKEN", "namespace": "shop", "container": "app",
                "image_repository": REPOSITORY, "rollout_timeout_seconds": 10, "poll_interval_seconds": 0.1} | changes
    return {name: value for name, value in settings.items() if value is not None}


def executor(url: str, **changes) -> KubernetesExecutor:
    settings = settings_for(url, **changes)
    assert settings_errors("kubernetes", settings) == []
    return KubernetesExecutor.from_settings(settings)


def closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def test_forward_sets_the_image_by_digest_and_waits_until_every_replica_is_ready(cluster):
    began = time.monotonic()
    result = executor(cluster.url).forward(STEP)
    took = time.monotonic() - began
    assert result.ok, result.output
    assert took >= cluster.rollout_seconds  # it waited for the controller
    assert cluster.images("shop", "web-eu") == {"sidecar": "envoyproxy/envoy:v1.31", "app": f"{REPOSITORY}@{NEW}"}
    assert cluster.images("payments", "web-pay")["app"] == f"{REPOSITORY}@{NEW}"
    assert cluster.deployment("shop", "web-eu")["status"]["observedGeneration"] == 2
    lines = result.output.splitlines()
    assert lines[:2] == [f"shop/web-eu: app set to {REPOSITORY}@{NEW}.",
                         f"payments/web-pay: app set to {REPOSITORY}@{NEW}."]
    done = sorted(lines[2:])  # in the order the controller got to them
    assert len(done) == 2
    assert done[0].startswith("payments/web-pay: rolled out in ") and done[0].endswith("s, 2 of 2 replicas ready.")
    assert done[1].startswith("shop/web-eu: rolled out in ") and done[1].endswith("s, 3 of 3 replicas ready.")


def test_the_token_goes_as_the_bearer_header_and_never_into_the_output(cluster):
    result = executor(cluster.url).forward(STEP)
    assert {request.headers.get("Authorization") for request in cluster.requests()} == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.output


def test_a_rollout_that_never_becomes_ready_fails_at_its_deadline_naming_the_deployment_and_its_counts(cluster):
    cluster.broken.add(("web-eu", f"{REPOSITORY}@{NEW}"))
    began = time.monotonic()
    result = executor(cluster.url, rollout_timeout_seconds=2).forward(STEP)
    assert 1.5 <= time.monotonic() - began < 8
    assert not result.ok
    assert result.output.splitlines()[-1] == (
        "shop/web-eu was not ready after 2 s: observed generation 2 of 2, 1 updated, 3 ready, 3 available of 3 "
        "desired replicas (4 in all).")
    assert "payments/web-pay: rolled out in " in result.output


def test_a_rollout_kubernetes_gave_up_on_fails_at_once_with_its_reason(cluster):
    cluster.stalled.add(("web-eu", f"{REPOSITORY}@{NEW}"))
    began = time.monotonic()
    result = executor(cluster.url, rollout_timeout_seconds=60).forward(STEP)
    assert time.monotonic() - began < 10
    assert not result.ok
    assert result.output.splitlines()[-1] == (
        'shop/web-eu stalled (ProgressDeadlineExceeded: ReplicaSet "web-eu-5d9c" has timed out progressing.): '
        'observed generation 2 of 2, 1 updated, 3 ready, 3 available of 3 desired replicas (4 in all).')


def test_backward_sets_the_previous_digest_and_follows_it(cluster):
    assert executor(cluster.url).forward(STEP).ok
    result = executor(cluster.url).backward(STEP)
    assert result.ok, result.output
    assert cluster.images("shop", "web-eu")["app"] == f"{REPOSITORY}@{OLD}"
    assert cluster.images("payments", "web-pay")["app"] == f"{REPOSITORY}@{OLD}"
    assert cluster.deployment("shop", "web-eu")["status"]["observedGeneration"] == 3
    assert f"shop/web-eu: app set to {REPOSITORY}@{OLD}." in result.output


def test_backward_without_an_earlier_build_fails_and_touches_nothing(cluster):
    step = StepContext(**{**vars(STEP), "previous_digest": ""})
    result = executor(cluster.url).backward(step)
    assert not result.ok and result.output == "No earlier build ran here: there is no image to roll back to."
    assert cluster.requests() == []


def test_setting_the_image_a_deployment_runs_already_changes_nothing(cluster):
    step = StepContext(**{**vars(STEP), "artifact_digest": OLD})
    result = executor(cluster.url).forward(step)
    assert result.ok, result.output
    assert f"shop/web-eu: app runs {REPOSITORY}@{OLD} already." in result.output
    assert not [request for request in cluster.requests() if request.method == "PATCH"]
    assert cluster.deployment("shop", "web-eu")["metadata"]["generation"] == 1


def test_check_says_whether_the_wave_runs_the_build_and_is_ready(cluster):
    run = executor(cluster.url)
    assert run.check(STEP) is False  # still on the old build
    assert run.forward(STEP).ok
    assert run.check(STEP) is True
    stuck = StepContext(**{**vars(STEP), "artifact_digest": "sha256:" + "c" * 64})
    cluster.broken.add(("web-eu", f"{REPOSITORY}@{stuck.artifact_digest}"))
    assert not executor(cluster.url, rollout_timeout_seconds=1).forward(stuck).ok
    assert run.check(stuck) is False  # set, never ready: a forward step sent again follows it


def test_check_cannot_tell_when_the_api_server_cannot_be_asked(cluster):
    assert executor(f"http://127.0.0.1:{closed_port()}").check(STEP) is None
    missing = StepContext(**{**vars(STEP), "targets": ("web-gone",)})
    assert executor(cluster.url).check(missing) is None


def test_a_missing_deployment_or_container_fails_the_step_naming_it(cluster):
    cluster.add("web-batch", containers=("worker",))
    result = executor(cluster.url).forward(StepContext(**{**vars(STEP), "targets": ("web-gone",)}))
    assert not result.ok
    assert result.output.startswith("Reading shop/web-gone: the API server answered 404 Not Found: ")
    result = executor(cluster.url).forward(StepContext(**{**vars(STEP), "targets": ("web-batch",)}))
    assert not result.ok and result.output == "shop/web-batch has no container app (it has worker)."


def test_a_target_that_names_no_deployment_fails_the_step(cluster):
    result = executor(cluster.url).forward(StepContext(**{**vars(STEP), "targets": ("web-eu", "a/b/c", "Web_1")}))
    assert not result.ok and result.output == "Not a Deployment (name or namespace/name): a/b/c, Web_1."
    assert cluster.requests() == []


def test_an_api_server_that_is_not_there_fails_the_step_quickly(cluster):
    began = time.monotonic()
    result = executor(f"http://127.0.0.1:{closed_port()}").forward(STEP)
    assert time.monotonic() - began < 10
    assert not result.ok
    assert result.output.startswith("Reading shop/web-eu: the API server could not be reached: MaxRetryError")


def test_without_its_token_the_step_fails_naming_the_variable_and_calls_nothing(cluster, monkeypatch):
    monkeypatch.delenv("CB_TEST_K8S_TOKEN")
    result = executor(cluster.url).forward(STEP)
    assert not result.ok
    assert result.output == ("The environment variable CB_TEST_K8S_TOKEN, which should hold the token, is not set on "
                             "the worker.")
    assert cluster.requests() == []


def test_a_kubeconfig_names_the_api_server_and_its_credentials(cluster, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: kmock, cluster: {{server: "{cluster.url}"}}}}]
users: [{{name: deployer, user: {{token: from-the-kubeconfig}}}}]
contexts: [{{name: kmock, context: {{cluster: kmock, user: deployer}}}}]
current-context: kmock
""")
    settings = settings_for(cluster.url, api_server=None, token_env=None, kubeconfig=str(kubeconfig))
    assert settings_errors("kubernetes", settings) == []
    result = KubernetesExecutor.from_settings(settings).forward(STEP)
    assert result.ok, result.output
    assert {request.headers.get("Authorization") for request in cluster.requests()} == {"Bearer from-the-kubeconfig"}


def test_good_settings_have_no_errors():
    assert settings_errors("kubernetes", settings_for("https://k8s.example.com:6443", ca_file="/etc/cb/ca.pem")) == []
    assert settings_errors("kubernetes", {"kubeconfig": "/etc/cb/kubeconfig", "namespace": "shop",
                                          "container": "app", "image_repository": "ghcr.io/acme/shop-api"}) == []
    assert settings_errors("kubernetes", settings_for("http://127.0.0.1:6443",
                                                      image_repository="registry.local:5000/shop/api")) == []


@pytest.mark.parametrize(("changes", "error"), [
    ({"api_server": None}, "api_server (the API server's URL) or kubeconfig (a path on the worker) is required"),
    ({"kubeconfig": "/etc/cb/kubeconfig"}, "Give api_server or kubeconfig, not both"),
    ({"api_server": "ftp://k8s.example.com"}, "api_server must be an http:// or https:// URL"),
    ({"api_server": "https://admin:pw@k8s.example.com"}, "api_server must not hold credentials"),
    ({"api_server": "http://k8s.example.com:6443"}, "api_server must be an https:// URL (http:// only to this machine"),
    ({"api_server": None, "token_env": None, "kubeconfig": "kubeconfig"}, "kubeconfig must be an absolute path"),
    ({"api_server": None, "kubeconfig": "/k", "ca_file": "/ca.pem"}, "ca_file goes with api_server"),
    ({"ca_file": "ca.pem"}, "ca_file must be an absolute path"),
    ({"token_env": None}, "token_env must name an environment variable"),
    ({"token_env": "eyJhbGciOi.secret"}, "token_env must name an environment variable"),
    ({"namespace": "Shop_Prod"}, "namespace is required"),
    ({"namespace": None}, "namespace is required"),
    ({"container": ""}, "container is required"),
    ({"image_repository": f"{REPOSITORY}:1.2"}, "image_repository is required: the image's repository without a tag"),
    ({"image_repository": f"{REPOSITORY}@{NEW}"}, "image_repository is required"),
    ({"image_repository": None}, "image_repository is required"),
    ({"rollout_timeout_seconds": 0}, "rollout_timeout_seconds must be a whole number of seconds from 1 to 3600"),
    ({"rollout_timeout_seconds": "600"}, "rollout_timeout_seconds must be a whole number"),
    ({"poll_interval_seconds": 900}, "poll_interval_seconds must be a number of seconds from 0.1 to 300"),
    ({"token": TOKEN}, "Unknown settings: token"),
])
def test_bad_settings_are_named(changes, error):
    errors = settings_errors("kubernetes", settings_for("https://k8s.example.com", **changes))
    assert any(error in message for message in errors), errors
    assert not any(TOKEN in message for message in errors)


# --- a whole deployment through the engine -------------------------------------------------------------------------

@pytest.fixture
def kubernetes_world(deploy_world, cluster, monkeypatch):  # noqa: F811 (the fixture imported above)
    """The deployment tests' world (a change, a plan of three waves, builds 1.0.0 running and 1.1.0 to go) with the
    plan's executor made Kubernetes: each wave's targets are Deployments in kmock running 1.0.0."""
    monkeypatch.setattr("governance.deployments.orchestration.deployment_advance.delay", lambda deployment_id: None)
    world = deploy_world
    HealthCheck.objects.filter(plan=world.plan).delete()  # they probe the command world's loopback servers
    layout = {"canary": ["web-canary"], "eu-west": ["web-eu-1", "web-eu-2"], "us-east": ["payments/web-us"]}
    for wave, targets in layout.items():
        PlanWave.objects.filter(plan=world.plan, name=wave).update(targets=targets)
        for target in targets:
            namespace, _, name = target.rpartition("/")
            cluster.add(name, namespace=namespace or "shop", digest=world.old.digest)
    DeploymentPlan.objects.filter(pk=world.plan.pk).update(
        executor="kubernetes", executor_settings=settings_for(cluster.url, rollout_timeout_seconds=2))
    world.plan.refresh_from_db()
    return world


TARGETS = (("shop", "web-canary"), ("shop", "web-eu-1"), ("shop", "web-eu-2"), ("payments", "web-us"))


@pytest.mark.django_db
def test_the_engine_rolls_a_build_out_wave_by_wave_through_kubernetes(kubernetes_world, cluster, release_manager):
    deployment = drive(start(kubernetes_world, release_manager))
    assert deployment.status == "succeeded", deployment.halt_reason
    assert {target: cluster.images(*target)["app"] for target in TARGETS} == {
        target: f"{REPOSITORY}@{kubernetes_world.new.digest}" for target in TARGETS}
    rollouts = deployment.steps.filter(kind="rollout").order_by("sequence")
    assert [(s.wave_name, s.state) for s in rollouts] == [("canary", "succeeded"), ("eu-west", "succeeded"),
                                                           ("us-east", "succeeded")]
    assert "payments/web-us: rolled out in " in rollouts.last().output


@pytest.mark.django_db
def test_a_wave_that_never_becomes_ready_rolls_every_wave_back_to_the_build_before(kubernetes_world, cluster,
                                                                                    release_manager):
    world = kubernetes_world
    cluster.broken.add(("web-us", f"{REPOSITORY}@{world.new.digest}"))
    deployment = drive(start(world, release_manager))
    assert deployment.status == "rolled_back", deployment.halt_reason
    assert deployment.halt_reason == "Step 6 (rollout, wave us-east) failed."
    failed = deployment.steps.get(kind="rollout", wave_name="us-east")
    assert failed.state == "failed"
    assert failed.output.splitlines()[-1] == (
        "payments/web-us was not ready after 2 s: observed generation 2 of 2, 1 updated, 3 ready, 3 available of 3 "
        "desired replicas (4 in all).")
    assert [step for step in steps_of(deployment) if step[1] == "rollback_rollout"] == [
        ("us-east", "rollback_rollout", "succeeded"), ("eu-west", "rollback_rollout", "succeeded"),
        ("canary", "rollback_rollout", "succeeded")]
    assert {target: cluster.images(*target)["app"] for target in TARGETS} == {
        target: f"{REPOSITORY}@{world.old.digest}" for target in TARGETS}
