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
# The cluster's DNS domain, in the long forms of the certificates' names.
CLUSTER_DOMAIN = "cluster.local"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
# A duration as cert-manager and Go write them: "2160h", "90m", "1h30m", "45s".
_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
ISSUER_KINDS = ("Issuer", "ClusterIssuer")
# Lifetimes of what the operator issues: a server certificate renewed at 2/3 of it (60 days),
# a CA renewed the same way, long enough that its rotation is rare.
CERT_DURATION_S = 90 * 24 * 3600
CA_DURATION_S = 10 * 365 * 24 * 3600
# Shortest certificate lifetime the spec may ask for. A certificate starts cofre.tls.CLOCK_SKEW
# (5 min) early and is renewed at 2/3 of its whole validity, so 10 min renews it 5 min after it is
# issued and leaves 5 min for the new one to reach the pods (the kubelet refreshes a mounted
# Secret within about a minute).
MIN_CERT_DURATION_S = 600


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class IssuerRef:
    """A cert-manager issuer that signs the cluster's certificates instead of the operator."""

    name: str
    kind: str = "Issuer"
    group: str = "cert-manager.io"


@dataclass(frozen=True, kw_only=True)
class CertificatesSpec:
    # None: the operator keeps a CA per BackupCluster and issues the certificates itself.
    issuer: IssuerRef | None = None
    duration_s: int = CERT_DURATION_S
    ca_duration_s: int = CA_DURATION_S


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
    certificates: CertificatesSpec = field(default_factory=CertificatesSpec)


def min_storage_nodes(*, replication_factor: int, primary_keeps_copy: bool) -> int:
    """Nodes an upload needs: F copies, plus a relaying primary unless it keeps a copy."""
    return replication_factor if primary_keeps_copy else replication_factor + 1


def parse_spec(raw: Mapping[str, Any]) -> ClusterSpec:
    placement = raw.get("placement") or {}
    storage = raw.get("storage") or {}
    manager = raw.get("manager") or {}
    monitoring = raw.get("monitoring") or {}
    spec = ClusterSpec(
        certificates=parse_certificates(_object(raw, "certificates")),
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


def parse_duration(text: object, *, field_name: str) -> int:
    """ "2160h", "1h30m", "90s" -> seconds; SpecError naming ``field_name`` otherwise."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None:
        raise SpecError(f"spec.{field_name} must be a duration such as 2160h or 90m, not {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """Seconds as cert-manager reads a duration ("1h0m30s" style, hours first)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s"


def parse_certificates(raw: Mapping[str, Any]) -> CertificatesSpec:
    issuer_raw = raw.get("issuer") or None
    issuer = None
    if issuer_raw is not None:
        if not isinstance(issuer_raw, Mapping):
            raise SpecError("spec.certificates.issuer must be an object with name, kind, group")
        name = issuer_raw.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError("spec.certificates.issuer.name must name a cert-manager issuer")
        kind = str(issuer_raw.get("kind", "Issuer"))
        if kind not in ISSUER_KINDS:
            raise SpecError(
                f"spec.certificates.issuer.kind must be one of {', '.join(ISSUER_KINDS)},"
                f" not {kind!r}"
            )
        group = str(issuer_raw.get("group", "cert-manager.io"))
        issuer = IssuerRef(name=name, kind=kind, group=group)
    return CertificatesSpec(
        issuer=issuer,
        duration_s=parse_duration(
            raw.get("duration", format_duration(CERT_DURATION_S)),
            field_name="certificates.duration",
        ),
        ca_duration_s=parse_duration(
            raw.get("caDuration", format_duration(CA_DURATION_S)),
            field_name="certificates.caDuration",
        ),
    )


def _object(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{key} must be an object, not {value!r}")
    return value


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
    certs = spec.certificates
    if certs.duration_s < MIN_CERT_DURATION_S:
        raise SpecError(
            f"spec.certificates.duration must be at least {MIN_CERT_DURATION_S}s,"
            f" not {certs.duration_s}s"
        )
    if certs.ca_duration_s <= certs.duration_s:
        raise SpecError("spec.certificates.caDuration must be longer than certificates.duration")


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

    def storage_pod(self, ordinal: int) -> str:
        return f"{self.storage}-{ordinal}"

    @property
    def ca_secret(self) -> str:
        """The CA's certificate and key: only the operator reads it."""
        return f"{self.cluster}-cofre-ca"

    @property
    def trust_secret(self) -> str:
        """Only the CA certificates (ca.crt), for the clients: the toolbox, CLI jobs."""
        return f"{self.cluster}-cofre-trust"

    @property
    def manager_tls(self) -> str:
        return f"{self.cluster}-cofre-tls-manager"

    @property
    def storage_tls(self) -> str:
        return f"{self.cluster}-cofre-tls-storage"

    def manager_url(self, namespace: str) -> str:
        return f"https://{self.manager}.{namespace}.svc:{MANAGER_PORT}"

    def manager_dns_names(self, namespace: str) -> list[str]:
        """Every name the manager's Service answers to in the cluster, and localhost for a
        `kubectl port-forward` (its certificate's SANs)."""
        service = self.manager
        return [
            f"{service}.{namespace}.svc",
            service,
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
            "localhost",
        ]

    def storage_dns_names(self, namespace: str) -> list[str]:
        """The headless Service and every storage pod's name under it (POD.SERVICE.NS.svc)."""
        service = self.storage
        return [
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
            f"*.{service}.{namespace}.svc",
            f"*.{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
        ]


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
