"""A real Kubernetes cluster on this machine for development and end-to-end tests."""

from devcluster.cluster import Cluster

__all__ = ["Cluster"]
