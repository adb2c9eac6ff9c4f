"""Suite-wide wiring: the loopback Kubernetes control plane shared by tests/cluster and tests/e2e."""

pytest_plugins = ["loraxkit.testcluster.pytest_plugin"]
