"""Where the dev cluster keeps its files, which addresses and ports it uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def _read_versions() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (PACKAGE_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


VERSIONS = _read_versions()
K8S_VERSION = VERSIONS["K8S_VERSION"]

STATE_DIR = Path(os.environ.get("COFRE_DEVCLUSTER_DIR", REPO_ROOT / ".devcluster")).resolve()
KUBECONFIG = STATE_DIR / "kubeconfig"
# Unix sockets live here: their paths must stay short whatever the checkout's path.
RUN_DIR = Path("/run/cofre-devcluster")

# The apiserver's advertise address, added to lo so that pods reach it through their bridge;
# CoreDNS answers on it too.
API_IP = "10.255.0.1"
API_PORT = 6443
DNS_IP = API_IP
ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
CONTROLLER_MANAGER_PORT = 10357
SCHEDULER_PORT = 10359
PROXY_HEALTHZ_PORT = 10356
PROXY_METRICS_PORT = 10349
COREDNS_HEALTH_PORT = 10380
COREDNS_READY_PORT = 10381
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
STORAGE_CLASS = "standard"
PROVISIONER_NAME = "devcluster.cofre/hostpath"
PAUSE_IMAGE = "localhost/pause:cofre"
# The python:3.11-slim-bookworm stand-in (images.sh base), in every node too: a pod that names
# it runs without a `load-image` first.
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True)
class NodeSpec:
    """One simulated machine: a kubelet and its own containerd, bridge and pod subnet."""

    index: int  # 1-based

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def ip(self) -> str:
        return f"10.255.0.{10 + self.index}"

    @property
    def zone(self) -> str:
        return ZONES[(self.index - 1) % len(ZONES)]

    @property
    def pod_subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.244.{self.index}.1"

    @property
    def bridge(self) -> str:
        return f"cofre{self.index}"

    @property
    def healthz_port(self) -> int:
        return 10340 + self.index

    @property
    def state_dir(self) -> Path:
        return STATE_DIR / "nodes" / self.name

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.name

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"


def node_count() -> int:
    return int(os.environ.get("COFRE_DEVCLUSTER_NODES", "3"))


def nodes(count: int | None = None) -> list[NodeSpec]:
    return [NodeSpec(i) for i in range(1, (count or node_count()) + 1)]
