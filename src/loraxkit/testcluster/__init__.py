"""A real Kubernetes 1.35 control plane on loopback for tests: the processes (controlplane), fake EKS
nodes from eks/cluster.yaml (nodes), the helm CLI and cluster helpers (cluster), and the pytest wiring
(pytest_plugin) shared by tests/cluster and tests/e2e."""
