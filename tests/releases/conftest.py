from tests.releases.real_prometheus import prometheus, prometheus_server  # noqa: F401 (a real Prometheus)
