"""The BackupCluster spec as a typed value, and the names of the children it owns.

The CRD's schema already validates and defaults the spec; parsing here fills the same defaults
(an object written before a default existed still works) and rejects combinations no cluster can
run with, as ``SpecError`` (the handlers turn it into a permanent error).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP = "cofre.dev"
VERSION = "v1alpha1"
PLURAL = "backupclusters"
KIND = "BackupCluster"

MANAGER_PORT = 8080
NODE_PORT = 8081
TOKEN_KEY = "token"
# The key in the CLI key Secret, and the name of the key the manager knows it by.
CLI_KEY_KEY = "key"
CLI_KEY_NAME = "in-cluster-cli"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    storage_nodes: int = 3
    replication_factor: int = 2
    primary_keeps_copy: bool = False
    latency_weight: float = 0.5
    stored_bytes_weight: float = 0.5
    storage_size: str = "10Gi"
    storage_class: str | None = None
    delete_claims_on_delete: bool = False
    # None: the operator's own image.
    image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    resources: Mapping[str, Any] = field(default_factory=dict)
    manager_storage_size: str = "1Gi"
    manager_storage_class: str | None = None
    manager_resources: Mapping[str, Any] = field(default_factory=dict)
    toolbox: bool = False
    # Degraded (CapacityLow) once this share of the capacity is used.
    capacity_warning_percent: int = 85
    # The manager and nodes serve /metrics without the token (COFRE_METRICS_PUBLIC), for a
    # Prometheus that holds no cluster token.
    public_metrics: bool = False


def min_storage_nodes(*, replication_factor: int, primary_keeps_copy: bool) -> int:
    """Nodes an upload needs: F copies, plus a relaying primary unless it keeps a copy."""
    return replication_factor if primary_keeps_copy else replication_factor + 1


def parse_spec(raw: Mapping[str, Any]) -> ClusterSpec:
    placement = raw.get("placement") or {}
    storage = raw.get("storage") or {}
    manager = raw.get("manager") or {}
    monitoring = raw.get("monitoring") or {}
    spec = ClusterSpec(
        storage_nodes=_int(raw, "storageNodes", 3),
        replication_factor=_int(raw, "replicationFactor", 2),
        primary_keeps_copy=bool(raw.get("primaryKeepsCopy", False)),
        latency_weight=float(placement.get("latencyWeight", 0.5)),
        stored_bytes_weight=float(placement.get("storedBytesWeight", 0.5)),
        storage_size=str(storage.get("size", "10Gi")),
        storage_class=storage.get("storageClassName") or None,
        delete_claims_on_delete=bool(storage.get("deleteClaimsOnDelete", False)),
        image=raw.get("image") or None,
        image_pull_policy=str(raw.get("imagePullPolicy", "IfNotPresent")),
        resources=dict(raw.get("resources") or {}),
        manager_storage_size=str(manager.get("storageSize", "1Gi")),
        manager_storage_class=manager.get("storageClassName") or None,
        manager_resources=dict(manager.get("resources") or {}),
        toolbox=bool(raw.get("toolbox", False)),
        capacity_warning_percent=_int(monitoring, "capacityWarningPercent", 85, "monitoring."),
        public_metrics=bool(monitoring.get("publicMetrics", False)),
    )
    validate_spec(spec)
    return spec


def _int(raw: Mapping[str, Any], key: str, default: int, prefix: str = "") -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"spec.{prefix}{key} must be an integer, not {value!r}")
    return value


def validate_spec(spec: ClusterSpec) -> None:
    if spec.storage_nodes < 1:
        raise SpecError("spec.storageNodes must be >= 1")
    if spec.replication_factor < 1:
        raise SpecError("spec.replicationFactor must be >= 1")
    needed = min_storage_nodes(
        replication_factor=spec.replication_factor, primary_keeps_copy=spec.primary_keeps_copy
    )
    if spec.storage_nodes < needed:
        raise SpecError(
            f"spec.storageNodes={spec.storage_nodes} is too few for replicationFactor="
            f"{spec.replication_factor} (primaryKeepsCopy={str(spec.primary_keeps_copy).lower()}):"
            f" needs at least {needed}"
        )
    for name, value in (
        ("placement.latencyWeight", spec.latency_weight),
        ("placement.storedBytesWeight", spec.stored_bytes_weight),
    ):
        if not 0.0 <= value <= 1.0:
            raise SpecError(f"spec.{name} must be within [0, 1], not {value}")
    for name, size in (
        ("storage.size", spec.storage_size),
        ("manager.storageSize", spec.manager_storage_size),
    ):
        if not _QUANTITY.match(size):
            raise SpecError(f"spec.{name} must be a quantity such as 10Gi, not {size!r}")
    if not 1 <= spec.capacity_warning_percent <= 100:
        raise SpecError(
            "spec.monitoring.capacityWarningPercent must be within [1, 100], not"
            f" {spec.capacity_warning_percent}"
        )
    if spec.image_pull_policy not in PULL_POLICIES:
        raise SpecError(f"spec.imagePullPolicy must be one of {', '.join(PULL_POLICIES)}")


@dataclass(frozen=True)
class Names:
    """Names of a BackupCluster's children, all derived from its own name."""

    cluster: str

    @property
    def secret(self) -> str:
        return f"{self.cluster}-token"

    @property
    def manager(self) -> str:
        return f"{self.cluster}-manager"

    @property
    def storage(self) -> str:
        return f"{self.cluster}-storage"

    @property
    def toolbox(self) -> str:
        return f"{self.cluster}-toolbox"

    @property
    def cli_key(self) -> str:
        """The Secret holding the in-cluster CLI's backup key (never the token)."""
        return f"{self.cluster}-cofre-cli-key"

    def storage_pod(self, ordinal: int) -> str:
        return f"{self.storage}-{ordinal}"

    def manager_url(self, namespace: str) -> str:
        return f"http://{self.manager}.{namespace}.svc:{MANAGER_PORT}"


def labels(cluster: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "cofre",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "cofre-operator",
    }


def selector_labels(cluster: str, component: str) -> dict[str, str]:
    """The immutable subset used in StatefulSet selectors and Services."""
    return {
        "app.kubernetes.io/name": "cofre",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/component": component,
    }


def storage_selector(cluster: str) -> str:
    """Label selector string of a cluster's storage pods (discovery and the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(cluster, "storage-node").items())
