"""Smoke tests of the dev cluster: real pods, networking, DNS, volumes, RBAC, helm, faults."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.pytest_plugin import DevCluster

pytestmark = pytest.mark.cluster

IMAGE = "localhost/devcluster-smoke:dev"
APP_DIR = Path(__file__).parent / "app"
CHART_DIR = Path(__file__).parent / "chart"


@pytest.fixture(scope="module", autouse=True)
def smoke_image(dev_cluster: DevCluster) -> Iterator[str]:
    dev_cluster.build_image(IMAGE, APP_DIR)
    yield IMAGE


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def pods(dc: DevCluster, ns: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dc.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]
    return items


def in_pod(dc: DevCluster, ns: str, pod: str, code: str) -> str:
    """Run Python CODE inside POD; returns its stdout."""
    return dc.kubectl("exec", "-n", ns, pod, "--", "python3", "-c", textwrap.dedent(code))


def run_pod(dc: DevCluster, ns: str, name: str, spec: dict[str, Any]) -> str:
    """Create a run-once pod, wait until it has ended, return its logs."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", **spec},
    }
    dc.apply(json.dumps(pod), ns)
    dc.wait_for(
        f"pod {name} to end",
        lambda: (
            dc.kubectl_json("get", "pod", name, "-n", ns)["status"].get("phase")
            in ("Succeeded", "Failed")
        ),
        timeout=120,
    )
    return dc.kubectl("logs", "-n", ns, name)


CLIENT_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "client"},
    "spec": {
        "containers": [
            {
                "name": "client",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", "import time; time.sleep(100000)"],
            }
        ],
        "terminationGracePeriodSeconds": 1,
    },
}


def test_nodes_have_own_hostnames_and_zones(dev_cluster: DevCluster) -> None:
    nodes = dev_cluster.kubectl_json("get", "nodes")["items"]
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in nodes}
    assert sorted(labels) == sorted(dev_cluster.node_names)
    assert {lab["kubernetes.io/hostname"] for lab in labels.values()} == set(labels)
    assert len({lab["topology.kubernetes.io/zone"] for lab in labels.values()}) == len(labels)
    version = json.loads(dev_cluster.kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"] != "v0.0.0-master"


def test_deployment_answers_on_pod_ip_and_service_dns(
    dev_cluster: DevCluster, namespace: str
) -> None:
    dc, ns = dev_cluster, namespace
    dc.apply(
        f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-nodeport}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""",
        ns,
    )
    dc.apply(json.dumps(CLIENT_POD), ns)
    dc.wait_for("2 ready web pods", lambda: sum(map(pod_ready, pods(dc, ns, "app=web"))) == 2)
    for pod in pods(dc, ns, "app=web"):
        ip = pod["status"]["podIP"]
        assert ip.startswith("10.244.")
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
            assert resp.read().decode().strip() == f"hello from {pod['metadata']['name']}"
    dc.wait_for(
        "client pod ready", lambda: pod_ready(dc.kubectl_json("get", "pod", "client", "-n", ns))
    )
    # kube-proxy programs a new Service within moments: poll until it answers by name.
    fetch = f"""
        import urllib.request
        print(urllib.request.urlopen("http://web.{ns}.svc:80/", timeout=5).read().decode())
    """
    answers: list[str] = []

    def service_answers() -> bool:
        answers.append(
            dc.kubectl(
                "exec",
                "-n",
                ns,
                "client",
                "--",
                "python3",
                "-c",
                textwrap.dedent(fetch),
                check=False,
            )
        )
        return answers[-1].startswith("hello from web-")

    dc.wait_for("the Service to answer by its DNS name", service_answers, timeout=60)
    out = answers[-1]
    assert out.startswith("hello from web-")

    # The NodePort answers on every node's address, whichever node runs the pods.
    port = dc.kubectl_json("get", "service", "web-nodeport", "-n", ns)["spec"]["ports"][0][
        "nodePort"
    ]
    addresses = [
        a["address"]
        for node in dc.kubectl_json("get", "nodes")["items"]
        for a in node["status"]["addresses"]
        if a["type"] == "InternalIP"
    ]
    assert len(addresses) == 3

    def node_port_answers(address: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as resp:
                return resp.read().decode().startswith("hello from web-")
        except OSError:
            return False

    for address in addresses:
        dc.wait_for(f"the NodePort to answer on {address}", lambda a=address: node_port_answers(a))


def test_statefulset_keeps_data_across_scale_down_and_up(
    dev_cluster: DevCluster, namespace: str
) -> None:
    dc, ns = dev_cluster, namespace
    dc.apply(
        f"""
apiVersion: v1
kind: Service
metadata: {{name: data}}
spec:
  clusterIP: None
  selector: {{app: data}}
  ports: [{{port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: data}}
spec:
  serviceName: data
  replicas: 3
  selector: {{matchLabels: {{app: data}}}}
  template:
    metadata: {{labels: {{app: data}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: data
        image: {IMAGE}
        imagePullPolicy: Never
        volumeMounts: [{{name: store, mountPath: /data}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 2
  volumeClaimTemplates:
  - metadata: {{name: store}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
""",
        ns,
    )

    def ready_count() -> int:
        sts = dc.kubectl_json("get", "statefulset", "data", "-n", ns)
        return int(sts.get("status", {}).get("readyReplicas") or 0)

    dc.wait_for("3 ready replicas", lambda: ready_count() == 3, timeout=180)
    pvcs = dc.kubectl_json("get", "pvc", "-n", ns)["items"]
    assert sorted(p["status"]["phase"] for p in pvcs) == ["Bound"] * 3
    in_pod(dc, ns, "data-2", "open('/data/marker', 'w').write('written by the first data-2')")

    dc.kubectl("scale", "statefulset", "data", "-n", ns, "--replicas=1")
    dc.wait_for("scale down to 1", lambda: len(pods(dc, ns, "app=data")) == 1, timeout=120)
    dc.kubectl("scale", "statefulset", "data", "-n", ns, "--replicas=3")
    dc.wait_for("3 ready replicas again", lambda: ready_count() == 3, timeout=180)
    out = in_pod(dc, ns, "data-2", "print(open('/data/marker').read())")
    assert out.strip() == "written by the first data-2"


def test_in_cluster_config_is_subject_to_rbac(dev_cluster: DevCluster, namespace: str) -> None:
    dc, ns = dev_cluster, namespace
    dc.apply(
        f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader}}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-reads-pods}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{kind: ServiceAccount, name: reader, namespace: {ns}}}
""",
        ns,
    )
    # What an in-cluster client does: env for the address, the mounted token and CA.
    script = textwrap.dedent("""
        import os, ssl, urllib.error, urllib.request
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        ns = open(f"{sa}/namespace").read()
        token = open(f"{sa}/token").read()
        ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
        base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"],
                                  os.environ["KUBERNETES_SERVICE_PORT"])
        for path in (f"/api/v1/namespaces/{ns}/pods", "/api/v1/namespaces/kube-system/pods",
                     "/api/v1/secrets"):
            req = urllib.request.Request(base + path,
                                         headers={"Authorization": "Bearer " + token})
            try:
                status = urllib.request.urlopen(req, context=ctx, timeout=10).status
            except urllib.error.HTTPError as e:
                status = e.code
            print(path, status)
    """)
    logs = run_pod(
        dc,
        ns,
        "rbac-check",
        {
            "serviceAccountName": "reader",
            "containers": [
                {
                    "name": "check",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", script],
                }
            ],
        },
    )
    assert f"/api/v1/namespaces/{ns}/pods 200" in logs
    assert "/api/v1/namespaces/kube-system/pods 403" in logs
    assert "/api/v1/secrets 403" in logs


def test_security_context_is_enforced(dev_cluster: DevCluster, namespace: str) -> None:
    script = textwrap.dedent("""
        import os
        print("uid", os.getuid())
        try:
            open("/written-by-test", "w").write("x")
            print("root filesystem writable")
        except OSError as e:
            print("root filesystem", e.strerror)
    """)
    logs = run_pod(
        dev_cluster,
        namespace,
        "locked",
        {
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "locked",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", script],
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    )
    assert "uid 65532" in logs
    assert "root filesystem Read-only file system" in logs


def test_job_succeeds_and_logs_are_served(dev_cluster: DevCluster, namespace: str) -> None:
    dc, ns = dev_cluster, namespace
    dc.apply(
        f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: hello}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: {IMAGE}
        imagePullPolicy: Never
        command: [python3, -c, "print('job output', 6 * 7)"]
""",
        ns,
    )

    def succeeded() -> bool:
        return bool(dc.kubectl_json("get", "job", "hello", "-n", ns)["status"].get("succeeded"))

    dc.wait_for("job to succeed", succeeded)
    assert "job output 42" in dc.kubectl("logs", "-n", ns, "job/hello")


def test_the_base_image_is_on_every_node_from_the_start(
    dev_cluster: DevCluster, namespace: str
) -> None:
    """A pod naming python:3.11-slim-bookworm runs on any node without a `load-image` first."""
    dc, ns = dev_cluster, namespace
    for node in ("node-1", "node-2", "node-3"):
        name = f"base-{node}"
        dc.apply(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name},
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeName": node,
                        "containers": [
                            {
                                "name": "c",
                                "image": "python:3.11-slim-bookworm",
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-c", "print('base', 6 * 7)"],
                            }
                        ],
                    },
                }
            ),
            ns,
        )

        def phase(name: str = name) -> str:
            return str(dc.kubectl_json("get", "pod", name, "-n", ns)["status"].get("phase"))

        dc.wait_for(f"{name} to succeed", lambda: phase() == "Succeeded", timeout=90)
        assert "base 42" in dc.kubectl("logs", "-n", ns, name)


def test_missing_image_is_never_pulled(dev_cluster: DevCluster, namespace: str) -> None:
    dc, ns = dev_cluster, namespace
    dc.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "nopull"},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "localhost/absent:1", "imagePullPolicy": "Never"}
                    ]
                },
            }
        ),
        ns,
    )

    def reason() -> str:
        st = dc.kubectl_json("get", "pod", "nopull", "-n", ns)["status"]
        waiting = (st.get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {})
        return str(waiting.get("reason", ""))

    dc.wait_for("ErrImageNeverPull", lambda: reason() == "ErrImageNeverPull", timeout=60)


def test_helm_install(dev_cluster: DevCluster, namespace: str) -> None:
    dc, ns = dev_cluster, namespace
    dc.helm(
        "install",
        "smoke",
        str(CHART_DIR),
        "-n",
        ns,
        "--set",
        "greeting=hi there",
        "--wait",
        "--timeout",
        "3m",
    )
    cm = dc.kubectl_json("get", "configmap", "smoke-settings", "-n", ns)
    assert cm["data"]["greeting"] == "hi there"
    assert "smoke" in dc.helm("list", "-n", ns, "-q")
    deploy = dc.kubectl_json("get", "deployment", "smoke-web", "-n", ns)
    assert deploy["status"].get("readyReplicas") == 1


def test_killed_container_is_restarted(dev_cluster: DevCluster, namespace: str) -> None:
    dc, ns = dev_cluster, namespace
    dc.apply(json.dumps(CLIENT_POD), ns)

    def status() -> dict[str, Any]:
        st: dict[str, Any] = dc.kubectl_json("get", "pod", "client", "-n", ns)["status"]
        return st

    dc.wait_for("client ready", lambda: pod_ready({"status": status()}))
    dc.kill_container(ns, "client")
    dc.wait_for("a restart", lambda: status()["containerStatuses"][0]["restartCount"] >= 1)
    dc.wait_for("client ready again", lambda: pod_ready({"status": status()}))


def test_stopped_node_turns_not_ready_with_its_pods(
    dev_cluster: DevCluster, namespace: str
) -> None:
    dc, ns = dev_cluster, namespace
    victim = dc.node_names[-1]
    pod = json.loads(json.dumps(CLIENT_POD))
    pod["metadata"]["name"] = "pinned"
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": victim}
    dc.apply(json.dumps(pod), ns)
    dc.wait_for(
        "pinned pod ready", lambda: pod_ready(dc.kubectl_json("get", "pod", "pinned", "-n", ns))
    )

    def node_ready() -> bool:
        node = dc.kubectl_json("get", "node", victim)
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    dc.stop_node(victim)
    try:
        dc.wait_for(f"{victim} NotReady", lambda: not node_ready(), timeout=90)
        dc.wait_for(
            "pinned pod not ready",
            lambda: not pod_ready(dc.kubectl_json("get", "pod", "pinned", "-n", ns)),
            timeout=60,
        )
    finally:
        dc.start_node(victim)
    dc.wait_for(f"{victim} Ready again", node_ready, timeout=90)
