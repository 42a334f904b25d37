"""Static node lists and Kubernetes pod views as endpoints (pure)."""

from __future__ import annotations

import pytest

from cofre.config import ConfigError, DiscoveryConfig
from cofre.kube import PodView
from cofre.manager.discovery import (
    KubernetesDiscovery,
    StaticDiscovery,
    make_discovery,
    parse_static_nodes,
)


def test_static_nodes_parse() -> None:
    eps = parse_static_nodes(("n1=http://127.0.0.1:9001/", " n2 = http://127.0.0.1:9002"))
    assert [(e.node_id, e.url, e.ready) for e in eps] == [
        ("n1", "http://127.0.0.1:9001", True),
        ("n2", "http://127.0.0.1:9002", True),
    ]
    for bad in (("n1",), ("n1=ftp://x",), ("=http://x",), ("a=http://x", "a=http://y")):
        with pytest.raises(ConfigError, match="COFRE_DISCOVERY_STATIC_NODES"):
            parse_static_nodes(bad)


def test_make_discovery_picks_the_backend() -> None:
    assert isinstance(
        make_discovery(DiscoveryConfig(static_nodes=("a=http://127.0.0.1:1",))), StaticDiscovery
    )
    kube = make_discovery(DiscoveryConfig(backend="kubernetes", node_port=8081))
    assert isinstance(kube, KubernetesDiscovery)


def test_pods_become_endpoints() -> None:
    discovery = KubernetesDiscovery(namespace="ns", selector="x=y", node_port=8081)
    eps = discovery.endpoints_of(
        [
            PodView(name="s-0", ip="10.0.0.1", ready=True, deleting=False),
            PodView(name="s-1", ip="10.0.0.2", ready=False, deleting=False),
            PodView(name="s-2", ip="10.0.0.3", ready=True, deleting=True),
            PodView(name="s-3", ip=None, ready=False, deleting=False),
        ]
    )
    assert [(e.node_id, e.url, e.ready) for e in eps] == [
        ("s-0", "http://10.0.0.1:8081", True),
        ("s-1", "http://10.0.0.2:8081", False),
        ("s-2", "http://10.0.0.3:8081", False),
        ("s-3", "", False),
    ]


def test_pods_behind_a_headless_service_are_reached_by_name() -> None:
    """With TLS the URL must carry a name the node certificate covers: POD.SERVICE.NS.svc."""
    discovery = make_discovery(
        DiscoveryConfig(
            backend="kubernetes",
            namespace="ns",
            node_port=8081,
            node_scheme="https",
            node_service="demo-storage",
        )
    )
    assert isinstance(discovery, KubernetesDiscovery)
    eps = discovery.endpoints_of(
        [
            PodView(name="demo-storage-0", ip="10.0.0.1", ready=True, deleting=False),
            PodView(name="demo-storage-1", ip=None, ready=False, deleting=False),
        ]
    )
    assert [(e.node_id, e.url, e.ready) for e in eps] == [
        ("demo-storage-0", "https://demo-storage-0.demo-storage.ns.svc:8081", True),
        ("demo-storage-1", "", False),
    ]


def test_an_unknown_node_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="COFRE_DISCOVERY_NODE_SCHEME"):
        make_discovery(DiscoveryConfig(backend="kubernetes", node_scheme="ftp"))
