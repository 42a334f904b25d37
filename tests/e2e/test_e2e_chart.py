"""The chart itself: lint-clean, its helm test passes, and the operator runs hardened under
its own ServiceAccount with only the rights it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.pytest_plugin import DevCluster

from ..rbac_checks import can_i, expected

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cofre"
RELEASE = "cofre"  # as the operator fixture installs it


def test_chart_lints_clean(dev_cluster: DevCluster) -> None:
    out = dev_cluster.helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


class _StrictLoader(yaml.SafeLoader):
    """Refuses a mapping with a repeated key (PyYAML and the API server keep the last one)."""


def _mapping_without_duplicates(
    loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
    if repeated:
        raise yaml.constructor.ConstructorError(
            None, None, f"repeated keys {repeated}", node.start_mark
        )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def test_rendered_chart_has_no_repeated_keys(dev_cluster: DevCluster) -> None:
    # Offline: helm's built-in Kubernetes version must satisfy the chart's kubeVersion.
    rendered = dev_cluster.helm("template", RELEASE, str(CHART))
    objects = [o for o in yaml.load_all(rendered, Loader=_StrictLoader) if o]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "Pod"} <= kinds


def test_helm_test_passes(dev_cluster: DevCluster, operator: str) -> None:
    out = dev_cluster.helm("test", RELEASE, "--namespace", operator, "--timeout", "3m")
    assert "Phase:" in out and "Succeeded" in out, out


def test_operator_runs_hardened_under_its_service_account(
    dev_cluster: DevCluster, operator: str
) -> None:
    pods: list[dict[str, Any]] = dev_cluster.kubectl_json(
        "get", "pods", "-n", operator, "-l", "app.kubernetes.io/component=operator"
    )["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, [p["status"].get("phase") for p in pods]
    for pod in running:
        spec = pod["spec"]
        assert spec["serviceAccountName"] == RELEASE
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("patch", "backupclusters.cofre.dev/status", "yes"),
        ("create", "statefulsets.apps", "yes"),
        ("get", "secrets", "yes"),
        ("list", "secrets", "no"),
        ("delete", "backupclusters.cofre.dev", "no"),
        ("delete", "nodes", "no"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", "no"),
        ("create", "pods/exec", "no"),
    ],
)
def test_operator_rights_are_least_privilege(
    dev_cluster: DevCluster, operator: str, verb: str, resource: str, allowed: str
) -> None:
    answer = dev_cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "--all-namespaces",
        f"--as=system:serviceaccount:{operator}:{RELEASE}",
        check=False,
    )
    assert answer.strip() == allowed


def test_operator_rules_are_exactly_its_expectation(
    dev_cluster: DevCluster, operator: str, namespace: str
) -> None:
    """In a namespace it watches, the operator may do what tests/e2e/rbac/operator.txt lists
    and nothing more (a rule added to the chart must be added there, with its reason)."""
    rules = can_i(dev_cluster.kubectl, account=f"{operator}:{RELEASE}", namespace=namespace)
    assert rules == expected("operator")
