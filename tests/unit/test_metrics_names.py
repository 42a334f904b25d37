"""Every metric the apps register follows the naming conventions, and docs/metrics.md lists
exactly those metrics with their types (the service tests check the labels of real samples)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cofre.config import ManagerConfig, NodeConfig
from cofre.manager import create_app as create_manager_app
from cofre.manager.metrics import METRICS as MANAGER_METRICS
from cofre.operator.metrics import OperatorMetrics
from cofre.storage_node import create_app as create_node_app
from cofre.storage_node.metrics import METRICS as NODE_METRICS

from ..metrics_text import Documented, documented, exposed_name

SECTIONS = {"manager": "Manager", "node": "Storage node", "operator": "Operator"}
# A name that carries a unit ends with it (before a counter's _total).
UNIT_WORDS = {"seconds": ("latency", "duration", "seconds"), "bytes": ("bytes",)}
# Dimensionless: a placement score and its terms (a latency term is a ratio, not seconds).
UNITLESS = ("_score", "_term")
RESERVED_LABELS = {"le", "quantile", "job", "instance"}


def registries(tmp_path: Path) -> dict[str, CollectorRegistry]:
    manager = create_manager_app(ManagerConfig(token="t", data_dir=tmp_path / "manager"))
    node = create_node_app(NodeConfig(token="t", data_dir=tmp_path / "node"))
    return {
        "manager": manager[MANAGER_METRICS].registry,
        "node": node[NODE_METRICS].registry,
        "operator": OperatorMetrics().registry,
    }


def registered(registry: CollectorRegistry) -> dict[str, str]:
    """name (a counter's with _total) -> type, of every family, labelled or not."""
    return {exposed_name(f): f.type for f in registry.collect()}


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    first, second = registries(tmp_path / "a"), registries(tmp_path / "b")
    for component in SECTIONS:
        assert first[component] is not second[component]
        assert registered(first[component]) == registered(second[component])


@pytest.mark.parametrize("component", sorted(SECTIONS))
def test_doc_lists_exactly_the_registered_metrics(tmp_path: Path, component: str) -> None:
    got = registered(registries(tmp_path)[component])
    doc = documented(SECTIONS[component])
    assert set(got) == set(doc), f"undocumented: {set(got) - set(doc)}, gone: {set(doc) - set(got)}"
    assert {n: d.type for n, d in doc.items()} == got


def test_doc_has_no_metric_outside_its_sections() -> None:
    every = documented()
    assert set(every) == {n for s in SECTIONS.values() for n in documented(s)}


@pytest.mark.parametrize("metric", documented().values(), ids=lambda d: d.name)
def test_names_follow_the_conventions(metric: Documented) -> None:
    name = metric.name
    component = next(c for c, s in SECTIONS.items() if name in documented(s))
    assert name.startswith(f"cofre_{component}_"), name
    assert re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]", name), name
    assert (metric.type == "counter") == name.endswith("_total"), name
    base = name.removesuffix("_total")
    for unit, words in UNIT_WORDS.items():
        if any(w in base for w in words) and not base.endswith(UNITLESS):
            assert base.endswith("_" + unit), f"{name} should end in _{unit}"
    assert not re.search(r"_(ms|milliseconds|kb|mb|gb|kib|mib|gib|minutes|hours)(_|$)", name)
    if metric.type == "histogram":
        assert base.endswith(("_seconds", "_bytes")), name
    for label in metric.labels:
        assert re.fullmatch(r"[a-z][a-z_]*", label) and label not in RESERVED_LABELS, label
