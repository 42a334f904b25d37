"""pytest plugin: a session-wide dev cluster.

Use it with `pytest_plugins = ["devcluster.pytest_plugin"]` in a conftest.py. The `dev_cluster`
fixture starts the cluster unless one is already running (then it is left running at the end),
and stops a cluster it started when the session ends, whatever the outcome."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.cluster import Cluster, ClusterError


class DevCluster:
    """What tests get: paths, kubectl/helm helpers, namespaces and fault hooks."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._namespaces: list[str] = []
        self._loaded: set[str] = set()

    @property
    def kubeconfig(self) -> Path:
        return self._cluster.kubeconfig

    @property
    def bin_dir(self) -> Path:
        return self._cluster.bin_dir

    @property
    def node_names(self) -> list[str]:
        return self._cluster.node_names

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses that use kubectl/helm (KUBECONFIG, PATH)."""
        return self._cluster.env()

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> str:
        return self._cluster.kubectl(*args, check=check, input=input, timeout=timeout).stdout

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        return self._cluster.helm(*args, check=check, timeout=timeout).stdout

    def apply(self, manifest: str, namespace: str | None = None) -> str:
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=manifest)

    def create_namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.kubectl("create", "namespace", name)
        # Pods need the namespace's default ServiceAccount, which a controller creates.
        self.wait_for(
            f"default ServiceAccount in {name}",
            lambda: self.kubectl("get", "sa", "default", "-n", name, check=False) != "",
        )
        self._namespaces.append(name)
        return name

    def delete_namespaces(self) -> None:
        for name in self._namespaces:
            self.kubectl(
                "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
            )
        self._namespaces.clear()

    def build_image(self, tag: str, context_dir: Path) -> None:
        self._cluster.build_image(tag, context_dir)
        self.load_image(tag)

    def load_image(self, tag: str) -> None:
        self._cluster.load_image(tag)
        self._loaded.add(tag)

    def stop_node(self, name: str) -> None:
        self._cluster.stop_node(name)

    def start_node(self, name: str) -> None:
        self._cluster.start_node(name)

    def kill_container(self, namespace: str, pod: str, container: str | None = None) -> str:
        return self._cluster.kill_container(namespace, pod, container)

    @staticmethod
    def wait_for(
        what: str, check: Callable[[], bool], timeout: float = 120, interval: float = 1.0
    ) -> None:
        """Poll CHECK until true; fail the test after TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (ClusterError, ValueError, KeyError, IndexError, TypeError) as e:
                last_error = e
            time.sleep(interval)
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for {what}"
            + (f" (last error: {last_error})" if last_error else "")
        )


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[DevCluster]:
    cluster = Cluster()
    reuse = cluster.is_healthy()
    started = False
    try:
        if not reuse:
            started = True  # also a failed start is cleaned up below
            cluster.up()
        yield DevCluster(cluster)
    finally:
        if started and not os.environ.get("COFRE_DEVCLUSTER_KEEP"):
            cluster.down()


@pytest.fixture
def namespace(dev_cluster: DevCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = dev_cluster.create_namespace()
    try:
        yield name
    finally:
        dev_cluster.kubectl(
            "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
        )
