"""End-to-end: the chart, the operator and a BackupCluster in the dev cluster.

Importing the fixtures (rather than `pytest_plugins`) keeps this conftest valid when pytest
collects the whole tests/ tree. Set COFRE_E2E_SKIP_BUILD=1 to reuse an image already loaded, or
COFRE_E2E_FROM_HEAD=1 to build the image from the last commit rather than the working tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devcluster.pytest_plugin import DevCluster, dev_cluster, namespace  # noqa: E402, F401

IMAGE = "localhost/cofre:dev"
OPERATOR_NS = "cofre-system"
RELEASE = "cofre"


@pytest.fixture(scope="session")
def cofre_image(dev_cluster: DevCluster) -> str:  # noqa: F811
    if os.environ.get("COFRE_E2E_SKIP_BUILD"):
        return IMAGE
    if not os.environ.get("COFRE_E2E_FROM_HEAD"):
        dev_cluster.build_image(IMAGE, ROOT)
        return IMAGE
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        dev_cluster.build_image(IMAGE, Path(tmp))
    return IMAGE


@pytest.fixture(scope="session")
def operator(dev_cluster: DevCluster, cofre_image: str) -> Iterator[str]:  # noqa: F811
    """The chart installed (operator Running under its ServiceAccount); uninstalled at the end."""
    dev_cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(ROOT / "charts/cofre"),
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        f"image.repository={cofre_image.rsplit(':', 1)[0]}",
        "--set",
        f"image.tag={cofre_image.rsplit(':', 1)[1]}",
        "--wait",
        "--timeout",
        "5m",
    )
    # A rebuilt image under the same tag needs a new pod to be picked up.
    dev_cluster.kubectl("rollout", "restart", f"deploy/{RELEASE}", "-n", OPERATOR_NS)
    dev_cluster.kubectl(
        "rollout", "status", f"deploy/{RELEASE}", "-n", OPERATOR_NS, "--timeout=180s", timeout=200
    )
    yield OPERATOR_NS
    dev_cluster.helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, check=False)
