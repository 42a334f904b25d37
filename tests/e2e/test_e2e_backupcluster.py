"""A BackupCluster's life in a real cluster: create, back up, scale, refuse, fail, delete.

The tests of this module share one BackupCluster ("demo", from examples/) and run in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cofre.operator.spec import NODE_PORT
from devcluster.cluster import ClusterError
from devcluster.pytest_plugin import DevCluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
LABELS = {
    "app.kubernetes.io/name": "cofre",
    "app.kubernetes.io/instance": "demo",
    "app.kubernetes.io/managed-by": "cofre-operator",
}


@pytest.fixture(scope="module")
def ns(dev_cluster: DevCluster, operator: str) -> Iterator[str]:
    name = dev_cluster.create_namespace("e2e")
    yield name
    # The BackupCluster goes first, while the operator still runs to release it.
    dev_cluster.kubectl("delete", "bc", "--all", "-n", name, "--timeout=120s", check=False)
    dev_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def bc(dc: DevCluster, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = dc.kubectl_json("get", "bc", "demo", "-n", ns)
    return obj


def sts_replicas(dc: DevCluster, ns: str) -> int:
    return int(dc.kubectl_json("get", "sts", "demo-storage", "-n", ns)["spec"]["replicas"])


def wait_ready(dc: DevCluster, ns: str, nodes: int, timeout: float = 420) -> dict[str, Any]:
    def ready() -> bool:
        status = bc(dc, ns).get("status") or {}
        return (
            status.get("phase") == "Ready"
            and status.get("readyNodes") == nodes
            and sts_replicas(dc, ns) == nodes
        )

    dc.wait_for(f"demo Ready with {nodes} storage nodes", ready, timeout=timeout, interval=3)
    return bc(dc, ns)


def toolbox(dc: DevCluster, ns: str, *args: str, check: bool = True, timeout: float = 300) -> str:
    return dc.kubectl(
        "exec", "-n", ns, "deploy/demo-toolbox", "--", *args, check=check, timeout=timeout
    )


def toolbox_python(dc: DevCluster, ns: str, code: str, timeout: float = 300) -> Any:
    """Run CODE in the toolbox; it prints one JSON document as its last line."""
    out = toolbox(dc, ns, "python", "-c", textwrap.dedent(code), timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def run_cli_job(dc: DevCluster, ns: str, name: str, script: str, timeout: float = 600) -> str:
    """examples/cli-job.yaml with its command replaced by SCRIPT; -> the Job's logs."""
    job = yaml.safe_load((ROOT / "examples/cli-job.yaml").read_text())
    job["metadata"]["name"] = name
    (container,) = job["spec"]["template"]["spec"]["containers"]
    container["command"] = ["sh", "-c", textwrap.dedent(script)]
    job["spec"]["backoffLimit"] = 0
    dc.apply(json.dumps(job), ns)

    def finished() -> bool:
        status = dc.kubectl_json("get", "job", name, "-n", ns).get("status") or {}
        return bool(status.get("succeeded") or status.get("failed"))

    dc.wait_for(f"job {name} to finish", finished, timeout=timeout, interval=2)
    logs = dc.kubectl("logs", "-n", ns, f"job/{name}")
    status = dc.kubectl_json("get", "job", name, "-n", ns)["status"]
    assert status.get("succeeded") == 1, f"job {name} failed:\n{logs}"
    return logs


def events(dc: DevCluster, ns: str) -> list[dict[str, Any]]:
    items = dc.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.kind=BackupCluster"
    )["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def test_invalid_backupcluster_is_rejected(dev_cluster: DevCluster, ns: str) -> None:
    too_few = {
        "apiVersion": "cofre.dev/v1alpha1",
        "kind": "BackupCluster",
        "metadata": {"name": "bad"},
        "spec": {"storageNodes": 2, "replicationFactor": 2},
    }
    with pytest.raises(ClusterError) as info:
        dev_cluster.apply(json.dumps(too_few), ns)
    assert "storageNodes must be at least replicationFactor + 1" in str(info.value)
    heavy = {**too_few, "spec": {"storageNodes": 3, "placement": {"latencyWeight": 1.5}}}
    with pytest.raises(ClusterError) as info:
        dev_cluster.apply(json.dumps(heavy), ns)
    assert "latencyWeight" in str(info.value)
    assert "bad" not in dev_cluster.kubectl("get", "bc", "-n", ns, "-o", "name")


def test_demo_becomes_ready(dev_cluster: DevCluster, ns: str) -> None:
    dev_cluster.kubectl("apply", "-n", ns, "-f", str(ROOT / "examples/backupcluster.yaml"))
    # The toolbox (the CLI in a Deployment) serves the later tests; turning it on is an update.
    dev_cluster.kubectl(
        "patch", "bc", "demo", "-n", ns, "--type", "merge", "-p", '{"spec":{"toolbox":true}}'
    )
    obj = wait_ready(dev_cluster, ns, 4)
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Degraded"] == "False"
    assert status["selector"] == (
        "app.kubernetes.io/name=cofre,app.kubernetes.io/instance=demo,"
        "app.kubernetes.io/component=storage-node"
    )
    uid = obj["metadata"]["uid"]
    for kind, name in [
        ("secret", "demo-token"),
        ("serviceaccount", "demo-manager"),
        ("role", "demo-manager"),
        ("rolebinding", "demo-manager"),
        ("service", "demo-storage"),
        ("poddisruptionbudget", "demo-storage"),
        ("service", "demo-manager"),
        ("statefulset", "demo-storage"),
        ("statefulset", "demo-manager"),
    ]:
        child = dev_cluster.kubectl_json("get", kind, name, "-n", ns)
        assert LABELS.items() <= child["metadata"]["labels"].items(), (kind, name)
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"]) for o in owners] == [("BackupCluster", uid)], (kind, name)
    dev_cluster.wait_for(
        "toolbox rollout",
        lambda: (
            (dev_cluster.kubectl_json("get", "deploy", "demo-toolbox", "-n", ns)["status"]).get(
                "readyReplicas"
            )
            == 1
        ),
        timeout=180,
    )
    nodes = json.loads(toolbox(dev_cluster, ns, "cofre", "status", "--json"))
    listed = nodes["nodes"] if isinstance(nodes, dict) else nodes
    assert sorted(n["node_id"] for n in listed) == [f"demo-storage-{i}" for i in range(4)]
    assert all(n["ready"] for n in listed)


def test_cli_job_backs_up_restores_lists_and_deletes(dev_cluster: DevCluster, ns: str) -> None:
    logs = run_cli_job(
        dev_cluster,
        ns,
        "cofre-roundtrip",
        """
        set -eu
        mkdir -p /tmp/w && cd /tmp/w
        python -c '
        import random
        rng = random.Random(7)
        with open("big.bin", "wb") as f:
            for _ in range(50):
                f.write(rng.randbytes(1 << 20))
        open("small.txt", "w").write("hello cofre\\n")
        '
        cofre put big.bin small.txt
        cofre get big.bin -o big.out
        cofre get small.txt -o small.out
        cmp big.bin big.out && echo "RESTORED big.bin identical"
        cmp small.txt small.out && echo "RESTORED small.txt identical"
        cofre ls
        cofre where big.bin
        cofre repair
        cofre rm small.txt
        echo "AFTER RM"
        cofre ls
        """,
    )
    assert "RESTORED big.bin identical" in logs
    assert "RESTORED small.txt identical" in logs
    # Where each copy is and why, from inside the cluster; nothing for repair to do.
    assert "big.bin version 1: 50.0 MiB in 13 chunks, 2 copies each" in logs
    assert "[1] placed by the upload of 'big.bin' at " in logs
    assert "0 copies lost, 0 chunks short of copies, 0 copies made" in logs
    before, after = logs.split("AFTER RM")
    assert "big.bin" in before and "small.txt" in before
    assert "big.bin" in after and "small.txt" not in after


def _put_files(dc: DevCluster, ns: str, prefix: str, count: int) -> dict[str, str]:
    """Back up COUNT files of 3 MiB from the toolbox; -> {name: sha256}."""
    result: dict[str, str] = toolbox_python(
        dc,
        ns,
        f"""
        import hashlib, json, os, random, subprocess
        os.makedirs("/tmp/{prefix}", exist_ok=True)
        sums = {{}}
        for i in range({count}):
            path = f"/tmp/{prefix}/f{{i}}.bin"
            data = random.Random(f"{prefix}{{i}}").randbytes(3 << 20)
            open(path, "wb").write(data)
            sums[path] = hashlib.sha256(data).hexdigest()
        subprocess.run(["cofre", "put", *sums], check=True, stdout=subprocess.DEVNULL)
        print(json.dumps(sums))
        """,
    )
    return result


def _restore_matches(dc: DevCluster, ns: str, sums: dict[str, str]) -> bool:
    ok: bool = toolbox_python(
        dc,
        ns,
        f"""
        import hashlib, json, subprocess
        sums = json.loads({json.dumps(json.dumps(sums))})
        good = True
        for name, digest in sums.items():
            subprocess.run(["cofre", "get", name, "-o", "/tmp/restored", "--force"], check=True)
            good &= hashlib.sha256(open("/tmp/restored", "rb").read()).hexdigest() == digest
        print(json.dumps(good))
        """,
    )
    return ok


class StatusWatch:
    """`kubectl get bc -w -o json`: one line per status the operator writes, so none is missed
    however briefly it lasts: "health phase degraded-status degraded-reason"."""

    def __init__(self, dc: DevCluster, ns: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(dc.bin_dir / "kubectl"), "get", "bc", "demo", "-n", ns, "-w", "-o", "json"],
            env={**os.environ, **dc.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        decoder = json.JSONDecoder()
        text = ""
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            text += chunk.decode()
            # The objects follow one another; a partial one waits for the next chunk.
            while text.strip():
                try:
                    obj, end = decoder.raw_decode(text.lstrip())
                except json.JSONDecodeError:
                    break
                text = text.lstrip()[end:]
                status = obj.get("status") or {}
                degraded: dict[str, Any] = next(
                    (c for c in status.get("conditions", []) if c["type"] == "Degraded"), {}
                )
                self.lines.append(
                    f"{status.get('healthStatus')} {status.get('phase')}"
                    f" {degraded.get('status')} {degraded.get('reason')}"
                )

    def find(self, predicate: Any, start: int = 0) -> int | None:
        """Index of the first line from ``start`` whose fields satisfy ``predicate``."""
        lines = list(self.lines)
        return next((i for i in range(start, len(lines)) if predicate(lines[i].split())), None)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def test_metrics_are_scraped_through_the_services_from_a_pod(
    dev_cluster: DevCluster, ns: str
) -> None:
    """What a Prometheus inside the cluster sees: the manager's and a node's /metrics through
    their Services, with the token, and nothing without it."""
    scraped = toolbox_python(
        dev_cluster,
        ns,
        f"""
        import json, os, ssl, urllib.error, urllib.request
        token = os.environ["COFRE_TOKEN"]
        # HTTPS, trusting the cluster's CA from the trust Secret the toolbox mounts.
        trust = ssl.create_default_context(cafile=os.environ["COFRE_CA"])
        node = "https://demo-storage-0.demo-storage.{ns}.svc:{NODE_PORT}"
        def get(url, auth=True):
            headers = {{"Authorization": "Bearer " + token}} if auth else {{}}
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, context=trust) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""
        print(json.dumps({{
            "manager": get(os.environ["COFRE_MANAGER"] + "/metrics"),
            "node": get(node + "/metrics"),
            "anonymous": get(os.environ["COFRE_MANAGER"] + "/metrics", auth=False)[0],
        }}))
        """,
    )
    assert scraped["anonymous"] == 401
    (status, manager_text), (node_status, node_text) = scraped["manager"], scraped["node"]
    assert status == 200 and node_status == 200
    manager = _samples(manager_text)
    ready = {s.labels["node"]: s.value for s in manager["cofre_manager_node_ready"]}
    assert ready == {f"demo-storage-{i}": 1.0 for i in range(4)}
    assert manager["cofre_manager_cluster_capacity_bytes"][0].value > 0
    routes = {s.labels["route"] for s in manager["cofre_manager_request_duration_seconds_count"]}
    assert "/v1/nodes" in routes
    node = _samples(node_text)
    assert node["cofre_node_free_bytes"][0].value > 0
    assert "cofre_node_received_bytes_total" in node


def _samples(text: str) -> dict[str, list[Any]]:
    """Every sample of a Prometheus text page, by sample name."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_a_killed_storage_pod_degrades_then_recovers(dev_cluster: DevCluster, ns: str) -> None:
    wait_ready(dev_cluster, ns, 4)
    dev_cluster.wait_for(
        "demo green", lambda: bc(dev_cluster, ns)["status"].get("healthStatus") == "green"
    )
    table = dev_cluster.kubectl("get", "bc", "demo", "-n", ns)
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "READY", "NODES", "FACTOR", "HEALTH", "USED"], header
    assert "CAPACITY" in header.split()
    assert row.split()[:5] == ["demo", "4", "4", "2", "green"], row
    watch = StatusWatch(dev_cluster, ns)
    try:
        dev_cluster.wait_for("the status watch", lambda: bool(watch.lines), timeout=30)

        # [health, phase, Degraded status, reason] as each status was written.
        def degraded(f: list[str]) -> bool:
            return f[0] != "green" and f[1:] == ["Degraded", "True", "NodesNotReady"]

        seen_degraded: int | None = None
        for _ in range(5):
            # A container restarted at once may answer its next readiness probe: the pod never
            # turns not ready. Killed again soon, it waits out a restart back-off, not ready.
            with contextlib.suppress(ClusterError):  # not running: already backing off
                dev_cluster.kill_container(ns, "demo-storage-2")
            deadline = time.monotonic() + 15
            while seen_degraded is None and time.monotonic() < deadline:
                seen_degraded = watch.find(degraded)
                time.sleep(0.5)
            if seen_degraded is not None:
                break
        assert seen_degraded is not None, f"never Degraded within 15 s of a kill: {watch.lines}"
        dev_cluster.wait_for(
            "a Degraded event",
            lambda: any(
                e["reason"] == "Degraded" and e["message"].startswith("NodesNotReady: ")
                for e in events(dev_cluster, ns)
            ),
            timeout=30,
            interval=0.5,
        )
        dev_cluster.wait_for(
            "Ready and green again",
            lambda: (
                watch.find(lambda f: f[:3] == ["green", "Ready", "False"], seen_degraded)
                is not None
            ),
            timeout=180,
        )
        dev_cluster.wait_for(
            "a Recovered event",
            lambda: "Recovered" in [e["reason"] for e in events(dev_cluster, ns)],
            timeout=30,
        )
    finally:
        watch.close()
    reasons = [e["reason"] for e in events(dev_cluster, ns)]
    assert "Recovered" in reasons[reasons.index("Degraded") :], reasons
    report = dev_cluster.kubectl("describe", "bc", "demo", "-n", ns)
    assert re.search(r"Health Status:\s+green", report), report
    assert "NodesNotReady" in report and "Recovered" in report, report


def test_killed_storage_process_gets_no_new_data(dev_cluster: DevCluster, ns: str) -> None:
    wait_ready(dev_cluster, ns, 4)
    victim = "demo-storage-1"
    outcome: dict[str, Any] = {}
    for attempt in range(4):
        dev_cluster.kill_container(ns, victim)
        outcome = toolbox_python(
            dev_cluster,
            ns,
            f"""
            import asyncio, json, os, random, subprocess, time
            from pathlib import Path
            from cofre.protocol.client import ManagerClient, open_session
            VICTIM = {victim!r}
            async def main():
                async with open_session(ca_file=Path(os.environ["COFRE_CA"])) as s:
                    m = ManagerClient(s, os.environ["COFRE_MANAGER"], os.environ["COFRE_TOKEN"])
                    async def victim():
                        nodes = (await m.nodes()).nodes
                        return next(n for n in nodes if n.node_id == VICTIM)
                    deadline = time.monotonic() + 30
                    while (await victim()).ready:
                        if time.monotonic() > deadline:
                            return {{"missed": True}}
                        await asyncio.sleep(0.2)
                    url = (await victim()).url
                    name = f"/tmp/while-down-{attempt}.bin"
                    open(name, "wb").write(random.Random(name).randbytes(2 << 20))
                    subprocess.run(["cofre", "put", name], check=True, stdout=subprocess.DEVNULL)
                    still_down = not (await victim()).ready
                    manifest = await m.get_manifest(name)
                    holders = sorted({{u for c in manifest.chunks for u in c.nodes}})
                    return {{"missed": not still_down, "url": url, "holders": holders}}
            print(json.dumps(asyncio.run(main())))
            """,
        )
        if not outcome.get("missed"):
            break
        # The container came back before the upload ended; each kill backs its restart off more.
        wait_ready(dev_cluster, ns, 4)
    assert not outcome.get("missed"), "the killed node never stayed down through an upload"
    assert outcome["holders"], outcome
    assert outcome["url"] not in outcome["holders"]
    # Once it is back, the cluster is Ready again with every node.
    wait_ready(dev_cluster, ns, 4)


def test_scale_up_then_down_drains_before_removing(dev_cluster: DevCluster, ns: str) -> None:
    dev_cluster.kubectl("scale", "bc/demo", "-n", ns, "--replicas=6")
    wait_ready(dev_cluster, ns, 6)
    sums = _put_files(dev_cluster, ns, "six", 12)
    dev_cluster.kubectl("scale", "bc/demo", "-n", ns, "--replicas=3")
    # Each status names the replicas its pass gave the StatefulSet and why: six while draining,
    # three only once the drain is done.
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = bc(dev_cluster, ns).get("status") or {}
        scaling = next((c for c in status.get("conditions", []) if c["type"] == "ScalingDown"), {})
        seen.append((int(status.get("storageNodes", 0)), str(scaling.get("reason"))))
        if seen[-1][1] == "Draining":
            assert seen[-1][0] == 6, "storage pods removed before their drain finished"
        if seen[-1][0] == 3:
            assert seen[-1][1] in ("RemovingDrainedNodes", "Idle"), seen
            break
        time.sleep(0.5)
    assert sts_replicas(dev_cluster, ns) == 3
    wait_ready(dev_cluster, ns, 3)
    reasons = [e["reason"] for e in events(dev_cluster, ns)]
    assert "SpecApplied" in reasons
    assert "DrainStarted" in reasons and "ScaledDown" in reasons
    assert reasons.index("DrainStarted") < reasons.index("ScaledDown")
    # The removed pods were drained (status above: six replicas until the drain was done);
    # once they are gone the operator ends their drain, so a later scale-up gets them back
    # taking data.
    drain = toolbox_python(
        dev_cluster,
        ns,
        """
        import asyncio, json, os, time
        from pathlib import Path
        from cofre.protocol.client import ManagerClient, open_session
        async def main():
            async with open_session(ca_file=Path(os.environ["COFRE_CA"])) as s:
                m = ManagerClient(s, os.environ["COFRE_MANAGER"], os.environ["COFRE_TOKEN"])
                deadline = time.monotonic() + 60
                while (status := await m.drain_status()).nodes and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                return status.model_dump(mode="json")
        print(json.dumps(asyncio.run(main())))
        """,
    )
    assert drain["nodes"] == {}, drain
    fsck = toolbox(dev_cluster, ns, "cofre", "fsck")  # exits non-zero when unhealthy
    assert fsck
    assert _restore_matches(dev_cluster, ns, sums)


def test_scale_below_replication_minimum_is_refused(dev_cluster: DevCluster, ns: str) -> None:
    before = bc(dev_cluster, ns)
    try:
        dev_cluster.kubectl("scale", "bc/demo", "-n", ns, "--replicas=1")
    except ClusterError as exc:
        # The API server's validation applies to the scale subresource too.
        assert "storageNodes must be at least replicationFactor + 1" in str(exc)
    else:
        # Accepted by the API: the operator must refuse and remove nothing.
        def refused() -> bool:
            status = bc(dev_cluster, ns).get("status") or {}
            return any(
                c["type"] == "ScalingDown" and c["reason"] == "BelowReplicationMinimum"
                for c in status.get("conditions", [])
            )

        dev_cluster.wait_for("the operator to refuse", refused, timeout=120)
        assert "ScaleDownRefused" in [e["reason"] for e in events(dev_cluster, ns)]
        dev_cluster.kubectl("scale", "bc/demo", "-n", ns, "--replicas=3")
    assert sts_replicas(dev_cluster, ns) == 3
    assert bc(dev_cluster, ns)["spec"]["storageNodes"] == before["spec"]["storageNodes"] == 3


def test_deleting_demo_removes_its_children(dev_cluster: DevCluster, ns: str) -> None:
    dev_cluster.kubectl("delete", "bc", "demo", "-n", ns, "--timeout=180s", timeout=200)

    def gone() -> bool:
        left = dev_cluster.kubectl(
            "get",
            "statefulsets,services,secrets,serviceaccounts,roles,rolebindings,deployments,pods,pdb",
            "-n",
            ns,
            "-l",
            # What the operator made (the CLI Job of examples/ carries the instance label too).
            "app.kubernetes.io/instance=demo,app.kubernetes.io/managed-by=cofre-operator",
            "-o",
            "name",
        )
        return left.strip() == ""

    dev_cluster.wait_for("demo's children to be garbage-collected", gone, timeout=300, interval=3)
    # Storage volumes are kept unless deleteClaimsOnDelete.
    claims = dev_cluster.kubectl("get", "pvc", "-n", ns, "-o", "name")
    assert "data-demo-storage-0" in claims
