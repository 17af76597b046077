from tests.governance.deployments.world import deploy_world, sent  # noqa: F401 (the world, the tasks collected)
from tests.releases.real_prometheus import prometheus, prometheus_server  # noqa: F401 (a real Prometheus)
