"""The chart's optional ServiceMonitor and PrometheusRule, rendered offline: only the helm binary
is needed (the dev cluster's build caches it), no cluster.

The rule group is checked twice: its expressions may name only the metrics cofre exports (a YAML
check that always runs), and, where promtool can be had, `promtool check rules` plus a
`promtool test rules` run that has every alert fire on its condition and clear without it.
promtool comes with Debian's `prometheus` package; without installing it:
`apt-get download prometheus && dpkg-deb -x prometheus_*.deb x && cp x/usr/bin/promtool
~/.cache/cofre/promtool/`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cofre.operator import builders

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cofre"
ON = ["--set", "monitoring.serviceMonitor.enabled=true"]
ON += ["--set", "monitoring.prometheusRule.enabled=true"]
# The metrics the rules may use: those the services serve, as docs/metrics.md lists them (a unit
# test holds that list to the apps' registries); and the states of cofre_manager_chunks.
METRICS = set(
    re.findall(r"^\| `(cofre_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text(), re.M)
)
RULE_METRICS = {
    "cofre_manager_node_ready",
    "cofre_manager_chunks",
    "cofre_manager_cluster_used_bytes",
    "cofre_manager_cluster_capacity_bytes",
    "cofre_manager_last_commit_timestamp_seconds",
}
CHUNK_STATES = {"ok", "under_replicated", "missing", "corrupt"}
ALERTS = {
    "CofreNodeNotReady",
    "CofreChunksUnderReplicated",
    "CofreChunksLost",
    "CofreCapacityFullSoon",
    "CofreNoRecentBackup",
}


def _tool(name: str, cached: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    hits = sorted(Path.home().glob(cached))
    return hits[-1] if hits else None


HELM = _tool("helm", ".cache/cofre/k8s/*/bin/helm")
PROMTOOL = _tool("promtool", ".cache/cofre/promtool/promtool")
pytestmark = pytest.mark.skipif(HELM is None, reason="no helm binary (the dev cluster build's)")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/cofre-helm-cache"}
    proc = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def render(*args: str) -> dict[str, dict[str, Any]]:
    """The chart rendered with ``args``: {kind: object} of the monitoring objects."""
    out = helm("template", "cofre", str(CHART), "--namespace", "cofre-system", *args).stdout
    objects = [o for o in yaml.safe_load_all(out) if o]
    return {o["kind"]: o for o in objects if o["kind"] in ("ServiceMonitor", "PrometheusRule")}


def rules(rendered: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    (group,) = rendered["PrometheusRule"]["spec"]["groups"]
    out: list[dict[str, Any]] = group["rules"]
    return out


def test_off_by_default() -> None:
    assert render() == {}


def test_service_monitor_selects_the_services_the_operator_makes() -> None:
    monitor = render(*ON)["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "cofre-system"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    (expression,) = spec["selector"]["matchExpressions"]
    for svc in (
        builders.build_manager_service(name="demo", namespace="backup"),
        builders.build_storage_service(name="demo", namespace="backup"),
    ):
        labels = svc["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert labels[expression["key"]] in expression["values"]
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "https"
    # Pod IPs and a CA per cluster: encrypted, not verified, unless told how.
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}
    assert "authorization" not in endpoint  # relies on spec.monitoring.publicMetrics
    assert [r["targetLabel"] for r in endpoint["relabelings"]] == [
        "cofre_cluster",
        "cofre_component",
    ]


def test_service_monitor_options() -> None:
    monitor = render(
        *ON,
        "--set",
        "monitoring.serviceMonitor.namespaces={backup,archive}",
        "--set",
        "monitoring.serviceMonitor.bearerTokenSecret.name=demo-token",
        "--set",
        "monitoring.serviceMonitor.namespace=backup",
        "--set",
        "monitoring.serviceMonitor.labels.release=prom",
        "--set-json",
        'monitoring.serviceMonitor.tlsConfig={"ca":{"secret":{"name":"demo-cofre-trust",'
        '"key":"ca.crt"}},"serverName":"demo-manager.backup.svc"}',
    )["ServiceMonitor"]
    assert monitor["metadata"]["namespace"] == "backup"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["backup", "archive"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "demo-token", "key": "token"},
    }
    assert endpoint["tlsConfig"] == {
        "ca": {"secret": {"name": "demo-cofre-trust", "key": "ca.crt"}},
        "serverName": "demo-manager.backup.svc",
    }


def test_rules_name_only_cofres_metrics() -> None:
    found = rules(render(*ON))
    assert {r["alert"] for r in found} == ALERTS
    used: set[str] = set()
    for rule in found:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        # Grouping labels (by (...)) are not metrics; what is left that looks like one must be.
        expr = re.sub(r"by \([^)]*\)", "", rule["expr"])
        names = set(re.findall(r"\bcofre_[a-z_]+\b", expr))
        assert names <= METRICS, (rule["alert"], names - METRICS)
        used |= names
        for states in re.findall(r'state=~?"([^"]+)"', expr):
            assert set(states.split("|")) <= CHUNK_STATES, rule["alert"]
    assert used == RULE_METRICS
    by_name = {r["alert"]: r for r in found}
    assert by_name["CofreNodeNotReady"]["for"] == "5m"
    assert by_name["CofreChunksUnderReplicated"]["for"] == "15m"
    assert (
        "predict_linear(cofre_manager_cluster_used_bytes[6h], 604800)"
        in (by_name["CofreCapacityFullSoon"]["expr"])
    )


def test_rules_can_be_turned_off_one_by_one_and_tuned() -> None:
    found = rules(
        render(
            *ON,
            "--set",
            "monitoring.prometheusRule.capacityFull.enabled=false",
            "--set",
            "monitoring.prometheusRule.noRecentBackup.windowSeconds=172800",
            "--set",
            "monitoring.prometheusRule.alertLabels.team=storage",
        )
    )
    by_name = {r["alert"]: r for r in found}
    assert set(by_name) == ALERTS - {"CofreCapacityFullSoon"}
    assert by_name["CofreNoRecentBackup"]["expr"].endswith("> 172800")
    assert all(r["labels"]["team"] == "storage" for r in found)


def test_lint_strict_passes_with_monitoring_on() -> None:
    out = helm("lint", "--strict", str(CHART), *ON).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("monitoring.serviceMonitor.interval=soon", "interval"),
        ("monitoring.serviceMonitor.scrap3Timeout=10s", "scrap3Timeout"),
        ("monitoring.prometheusRule.nodeNotReady.severity=page", "severity"),
        ("monitoring.prometheusRule.nodeNotReady.for=5 minutes", "for"),
        ("monitoring.prometheusRule.capacityFull.horizonSeconds=60", "horizonSeconds"),
        ("monitoring.serviceMonitor.namespaces={Bad_NS}", "namespaces"),
        ("monitoring.serviceMonitor.namespaceSelector.any=true", "namespaceSelector"),
    ],
)
def test_schema_refuses_bad_values(value: str, words: str) -> None:
    proc = helm("template", "cofre", str(CHART), *ON, "--set", value, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert words in proc.stderr, proc.stderr


needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool (see module docstring)")


def _rule_file(tmp_path: Path) -> Path:
    (group,) = render(*ON)["PrometheusRule"]["spec"]["groups"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    return path


@needs_promtool
def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(_rule_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    every = {"namespace": "backup", "cofre_cluster": "demo", **labels}
    inner = ", ".join(f'{k}="{v}"' for k, v in every.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


@functools.cache
def _descriptions() -> dict[str, str]:
    return {r["alert"]: r["annotations"]["description"] for r in rules(render(*ON))}


def _alert(name: str, at: str, summary: str | None = None, **labels: str) -> dict[str, Any]:
    """``name`` at ``at``: firing with ``summary`` and these labels (besides the cluster's), or
    (no summary) not firing."""
    want = {"namespace": "backup", "cofre_cluster": "demo", **labels}
    annotations = {"summary": summary, "description": _descriptions()[name]}
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": []
        if summary is None
        else [{"exp_labels": want, "exp_annotations": annotations}],
    }


@needs_promtool
def test_every_alert_fires_on_its_condition_and_clears_without_it(tmp_path: Path) -> None:
    rules_file = _rule_file(tmp_path)
    node = {"node": "demo-storage-1", "severity": "warning"}
    tests = [
        {
            # Node down from 1m to 10m; back at 11m.
            "interval": "1m",
            "input_series": [
                _series("cofre_manager_node_ready", "1 0x9 1x10", node="demo-storage-1")
            ],
            "alert_rule_test": [
                _alert("CofreNodeNotReady", "4m"),
                _alert(
                    "CofreNodeNotReady",
                    "8m",
                    "cofre storage node demo-storage-1 of backup/demo is not ready",
                    **node,
                ),
                _alert("CofreNodeNotReady", "13m"),
            ],
        },
        {
            # Short of copies from 1m to 20m; missing from 2m to 4m; repaired after.
            "interval": "1m",
            "input_series": [
                _series("cofre_manager_chunks", "0 5x19 0x10", state="under_replicated"),
                _series("cofre_manager_chunks", "0 0 3x2 0x20", state="missing"),
                _series("cofre_manager_chunks", "0x30", state="corrupt"),
            ],
            "alert_rule_test": [
                _alert("CofreChunksUnderReplicated", "10m"),
                _alert(
                    "CofreChunksUnderReplicated",
                    "18m",
                    "5 chunks of backup/demo are short of copies",
                    severity="warning",
                ),
                _alert("CofreChunksUnderReplicated", "23m"),
                _alert(
                    "CofreChunksLost",
                    "3m",
                    "3 chunks of backup/demo are missing",
                    severity="critical",
                    state="missing",
                ),
                _alert("CofreChunksLost", "6m"),
            ],
        },
        {
            # 1000 bytes more a minute against 10 MB: full within a week; at 150m the capacity
            # grows a hundredfold (nodes added).
            "interval": "1m",
            "input_series": [
                _series("cofre_manager_cluster_used_bytes", "0+1000x200"),
                _series("cofre_manager_cluster_capacity_bytes", "10000000x150 1000000000x50"),
            ],
            "alert_rule_test": [
                _alert("CofreCapacityFullSoon", "30m"),
                _alert(
                    "CofreCapacityFullSoon",
                    "100m",
                    "backup/demo is projected to run out of capacity",
                    severity="warning",
                ),
                _alert("CofreCapacityFullSoon", "160m"),
            ],
        },
        {
            # The last commit at time 0, the next at 25h.
            "interval": "1m",
            "input_series": [
                _series("cofre_manager_last_commit_timestamp_seconds", "0x1500 90000x60")
            ],
            "alert_rule_test": [
                _alert("CofreNoRecentBackup", "1400m"),
                _alert(
                    "CofreNoRecentBackup",
                    "1470m",
                    "backup/demo has committed no backup recently",
                    severity="warning",
                ),
                _alert("CofreNoRecentBackup", "1530m"),
            ],
        },
    ]
    spec = tmp_path / "test.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests}
        )
    )
    proc = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
