"""Finding the storage nodes.

A ``NodeDiscovery`` is watch-style: ``watch()`` is an async iterator that yields the full list of
nodes now and again on every change; it runs until cancelled. The manager feeds each snapshot
into its registry (cofre.manager.registry), which probing then confirms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from cofre import kube
from cofre.config import ConfigError, DiscoveryConfig
from cofre.errors import CofreError
from cofre.models import NodeEndpoint, NodeId, parse_node_id

log = logging.getLogger(__name__)


class NodeDiscovery(Protocol):
    name: str

    def watch(self) -> AsyncIterator[list[NodeEndpoint]]:
        """Yield every node known now, then again the whole list after each change."""
        ...


def parse_static_nodes(entries: tuple[str, ...]) -> list[NodeEndpoint]:
    """ "node-id=http://host:port" entries -> endpoints (ConfigError naming the bad entry)."""
    out: list[NodeEndpoint] = []
    seen: set[NodeId] = set()
    for entry in entries:
        node_id, sep, url = entry.partition("=")
        url = url.strip()
        if not sep or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"COFRE_DISCOVERY_STATIC_NODES: {entry!r} is not node-id=http://host:port"
            )
        try:
            nid = parse_node_id(node_id.strip())
        except CofreError as exc:
            raise ConfigError(f"COFRE_DISCOVERY_STATIC_NODES: {exc}") from None
        if nid in seen:
            raise ConfigError(f"COFRE_DISCOVERY_STATIC_NODES: node id {nid} given twice")
        seen.add(nid)
        out.append(NodeEndpoint(node_id=nid, url=url.strip().rstrip("/"), ready=True))
    return out


class StaticDiscovery:
    """A fixed list of nodes; probing alone decides which are ready."""

    name = "static"

    def __init__(self, endpoints: list[NodeEndpoint]) -> None:
        self.endpoints = endpoints

    async def watch(self) -> AsyncIterator[list[NodeEndpoint]]:
        yield list(self.endpoints)
        await asyncio.Event().wait()  # never changes


class KubernetesDiscovery:
    """Storage pods matching a label selector; pod name = node id.

    The URL names the pod through its headless Service when ``node_service`` is set (a TLS
    certificate covers that name, never a pod IP), else it is the pod IP. Either way a pod
    without an IP has no URL yet: it is not ready.
    """

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str,
        selector: str,
        node_port: int,
        node_scheme: str = "http",
        node_service: str = "",
    ) -> None:
        self.namespace = namespace
        self.selector = selector
        self.node_port = node_port
        self.node_scheme = node_scheme
        self.node_service = node_service

    def url_of(self, pod: kube.PodView, namespace: str) -> str:
        if not pod.ip:
            return ""
        host = f"{pod.name}.{self.node_service}.{namespace}.svc" if self.node_service else pod.ip
        return f"{self.node_scheme}://{host}:{self.node_port}"

    def endpoints_of(self, pods: list[kube.PodView]) -> list[NodeEndpoint]:
        namespace = self.namespace or kube.current_namespace()
        out = []
        for pod in pods:
            url = self.url_of(pod, namespace)
            ready = bool(pod.ip) and pod.ready and not pod.deleting
            out.append(NodeEndpoint(node_id=NodeId(pod.name), url=url, ready=ready))
        return out

    async def watch(self) -> AsyncIterator[list[NodeEndpoint]]:
        namespace = self.namespace or kube.current_namespace()
        backoff = 1.0
        while True:
            try:
                async for pods in kube.watch_pods(namespace=namespace, selector=self.selector):
                    backoff = 1.0
                    yield self.endpoints_of(pods)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "pod watch failed namespace=%s selector=%s error=%s retry_in_s=%.0f",
                    namespace,
                    self.selector,
                    exc,
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


def make_discovery(config: DiscoveryConfig) -> NodeDiscovery:
    if config.backend == "static":
        return StaticDiscovery(parse_static_nodes(config.static_nodes))
    if config.backend == "kubernetes":
        if config.node_scheme not in ("http", "https"):
            raise ConfigError(
                f"COFRE_DISCOVERY_NODE_SCHEME: {config.node_scheme!r} is neither http nor https"
            )
        return KubernetesDiscovery(
            namespace=config.namespace,
            selector=config.selector,
            node_port=config.node_port,
            node_scheme=config.node_scheme,
            node_service=config.node_service,
        )
    raise ConfigError(f"COFRE_DISCOVERY_BACKEND: unknown backend {config.backend!r}")
