"""EKS support: instance-type table, eksctl ClusterConfig model, cluster<->chart cross-checks."""
