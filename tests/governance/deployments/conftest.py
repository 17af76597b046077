from tests.governance.deployments.world import deploy_world  # noqa: F401 (the fixture every deployment test runs in)
