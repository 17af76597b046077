from tests.governance.deployments.world import deploy_world  # noqa: F401 (the fixture every deployment test runs in)
from tests.releases.real_prometheus import prometheus, prometheus_server  # noqa: F401 (a real Prometheus)
