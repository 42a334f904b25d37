"""TLS in a real cluster: the operator's CA and certificates, HTTPS from the CLI pod, plain HTTP
refused, and a certificate renewed in place while requests keep succeeding.

The BackupCluster "sec" asks for 10-minute certificates (the shortest the spec allows), so the
operator renews them about 5 minutes after it issued them; the tests of this module run in order.
"""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from cofre.operator.spec import MANAGER_PORT, NODE_PORT
from devcluster.pytest_plugin import DevCluster

pytestmark = pytest.mark.cluster

NAME = "sec"
SPEC = {
    "storageNodes": 3,
    "replicationFactor": 2,
    "storage": {"size": "256Mi"},
    "manager": {"storageSize": "128Mi"},
    "toolbox": True,
    "certificates": {"duration": "10m"},
}


@pytest.fixture(scope="module")
def ns(dev_cluster: DevCluster, operator: str) -> Iterator[str]:
    name = dev_cluster.create_namespace("e2e-tls")
    yield name
    dev_cluster.kubectl("delete", "bc", "--all", "-n", name, "--timeout=120s", check=False)
    dev_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def toolbox(dc: DevCluster, ns: str, *args: str, check: bool = True, timeout: float = 300) -> str:
    return dc.kubectl(
        "exec", "-n", ns, f"deploy/{NAME}-toolbox", "--", *args, check=check, timeout=timeout
    )


def toolbox_python(dc: DevCluster, ns: str, code: str, timeout: float = 300) -> Any:
    """Run CODE in the toolbox; it prints one JSON document as its last line."""
    out = toolbox(dc, ns, "python", "-c", textwrap.dedent(code), timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def secret_data(dc: DevCluster, ns: str, name: str) -> dict[str, bytes]:
    data = dc.kubectl_json("get", "secret", name, "-n", ns)["data"]
    return {k: base64.b64decode(v) for k, v in data.items()}


def serial_in_secret(dc: DevCluster, ns: str, name: str) -> int:
    return x509.load_pem_x509_certificate(secret_data(dc, ns, name)["tls.crt"]).serial_number


# What a peer presents, as seen from the toolbox trusting only the CA of the trust Secret:
# {host: [serial (hex), notAfter]}; a host that does not verify raises.
SERVED = """
import os, socket, ssl
def served(hosts):
    trust = ssl.create_default_context(cafile=os.environ["COFRE_CA"])
    out = {}
    for host, port in hosts:
        with socket.create_connection((host, port), timeout=10) as raw:
            with trust.wrap_socket(raw, server_hostname=host) as conn:
                cert = conn.getpeercert()
                out[host] = [cert["serialNumber"], cert["notAfter"]]
    return out
"""


def hosts(ns: str) -> list[tuple[str, int]]:
    return [
        (f"{NAME}-manager.{ns}.svc", MANAGER_PORT),
        (f"{NAME}-storage-0.{NAME}-storage.{ns}.svc", NODE_PORT),
    ]


def test_the_cluster_comes_up_with_its_ca_and_certificates(
    dev_cluster: DevCluster, ns: str
) -> None:
    obj = {"apiVersion": "cofre.dev/v1alpha1", "kind": "BackupCluster"}
    obj |= {"metadata": {"name": NAME}, "spec": SPEC}
    dev_cluster.apply(json.dumps(obj), ns)

    def ready() -> bool:
        status = dev_cluster.kubectl_json("get", "bc", NAME, "-n", ns).get("status") or {}
        return status.get("phase") == "Ready" and status.get("readyNodes") == 3

    dev_cluster.wait_for(f"{NAME} Ready over TLS", ready, timeout=420, interval=3)
    ca = secret_data(dev_cluster, ns, f"{NAME}-cofre-ca")
    assert set(ca) == {"ca.crt", "ca.key"}
    # The clients' Secret holds the CA certificate and nothing secret.
    trust = secret_data(dev_cluster, ns, f"{NAME}-cofre-trust")
    assert trust == {"ca.crt": ca["ca.crt"]}
    ca_cert = x509.load_pem_x509_certificate(ca["ca.crt"])
    for component, names in (
        ("manager", {f"{NAME}-manager.{ns}.svc"}),
        ("storage", {f"*.{NAME}-storage.{ns}.svc"}),
    ):
        data = secret_data(dev_cluster, ns, f"{NAME}-cofre-tls-{component}")
        assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert names <= set(sans.value.get_values_for_type(x509.DNSName))
    # The manager reaches the nodes by the names their certificate covers.
    dev_cluster.wait_for(
        "the toolbox",
        lambda: (
            dev_cluster.kubectl_json("get", "deploy", f"{NAME}-toolbox", "-n", ns)["status"].get(
                "readyReplicas"
            )
            == 1
        ),
        timeout=180,
    )
    status = json.loads(toolbox(dev_cluster, ns, "cofre", "status", "--json"))
    listed = status["nodes"] if isinstance(status, dict) else status
    assert sorted(n["url"] for n in listed) == [
        f"https://{NAME}-storage-{i}.{NAME}-storage.{ns}.svc:{NODE_PORT}" for i in range(3)
    ]
    assert all(n["ready"] for n in listed)


def test_the_cli_pod_puts_and_gets_over_https(dev_cluster: DevCluster, ns: str) -> None:
    env = toolbox(dev_cluster, ns, "env")
    assert f"COFRE_MANAGER=https://{NAME}-manager.{ns}.svc:{MANAGER_PORT}" in env.splitlines()
    assert "COFRE_CA=/etc/cofre/tls/ca.crt" in env.splitlines()
    out = toolbox(
        dev_cluster,
        ns,
        "sh",
        "-c",
        "set -e; cd /tmp; head -c 9000000 /dev/urandom > tls.bin; cofre put tls.bin;"
        " cofre get tls.bin -o tls.out --force; cmp tls.bin tls.out && echo SAME",
    )
    assert "SAME" in out


def test_plain_http_is_refused(dev_cluster: DevCluster, ns: str) -> None:
    result = toolbox_python(
        dev_cluster,
        ns,
        f"""
        import json, os, urllib.request
        outcome = {{}}
        for url in ("http://{NAME}-manager.{ns}.svc:{MANAGER_PORT}/v1/nodes",
                    "http://{NAME}-storage-0.{NAME}-storage.{ns}.svc:{NODE_PORT}/healthz"):
            request = urllib.request.Request(
                url, headers={{"Authorization": "Bearer " + os.environ["COFRE_KEY"]}}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    outcome[url] = r.status
            except Exception as exc:
                outcome[url] = type(exc).__name__
        print(json.dumps(outcome))
        """,
    )
    # No HTTP answer at all, not even an error status: the port speaks TLS only.
    assert all(isinstance(v, str) for v in result.values()), result
    # The CLI refuses a plain http:// manager URL (it would send the token in clear).
    out = toolbox(
        dev_cluster,
        ns,
        "sh",
        "-c",
        f"COFRE_MANAGER=http://{NAME}-manager.{ns}.svc:{MANAGER_PORT} cofre ls; echo rc=$?",
        check=False,
    )
    assert "rc=0" not in out and "Traceback" not in out, out


def test_certificates_are_renewed_in_place_while_requests_succeed(
    dev_cluster: DevCluster, ns: str
) -> None:
    manager_secret = f"{NAME}-cofre-tls-manager"
    storage_secret = f"{NAME}-cofre-tls-storage"
    before = (
        serial_in_secret(dev_cluster, ns, manager_secret),
        serial_in_secret(dev_cluster, ns, storage_secret),
    )
    pods_before = {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in dev_cluster.kubectl_json(
            "get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={NAME}"
        )["items"]
    }
    # In the toolbox: fetch a file again and again, and watch what the manager and a node
    # present, until both presented a new certificate (or 9 minutes passed).
    result = toolbox_python(
        dev_cluster,
        ns,
        SERVED
        + f"""
import hashlib, json, subprocess, time
hosts = {hosts(ns)!r}
want = hashlib.sha256(open("/tmp/tls.bin", "rb").read()).hexdigest()
first = served(hosts)
seen, gets, failures, last = first, 0, [], first
deadline = time.monotonic() + 540
while time.monotonic() < deadline:
    run = subprocess.run(
        ["cofre", "get", "tls.bin", "-o", "/tmp/again.out", "--force"],
        cwd="/tmp", capture_output=True, text=True,
    )
    gets += 1
    if run.returncode != 0:
        failures.append(run.stderr[-300:])
    elif hashlib.sha256(open("/tmp/again.out", "rb").read()).hexdigest() != want:
        failures.append("restored bytes differ")
    try:
        last = served(hosts)
    except Exception as exc:
        failures.append(f"handshake: {{exc}}")
    if all(last[h][0] != first[h][0] for h in first):
        break
    time.sleep(2)
print(json.dumps({{"first": first, "last": last, "gets": gets, "failures": failures}}))
""",
        timeout=620,
    )
    first, last = result["first"], result["last"]
    for host, _ in hosts(ns):
        assert last[host][0] != first[host][0], f"{host} still presents {first[host]}: {result}"
        assert last[host][1] != first[host][1], result
    assert result["failures"] == [], result
    assert result["gets"] >= 2, result
    # Renewed in place: the same Secrets hold the new certificates, which the pods now present;
    # no pod was replaced for it.
    after = (
        serial_in_secret(dev_cluster, ns, manager_secret),
        serial_in_secret(dev_cluster, ns, storage_secret),
    )
    assert after[0] != before[0] and after[1] != before[1]
    manager_host = hosts(ns)[0][0]
    assert int(last[manager_host][0], 16) == after[0], (last, after)
    pods_after = {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in dev_cluster.kubectl_json(
            "get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={NAME}"
        )["items"]
    }
    assert pods_after == pods_before
    reasons = [
        e["reason"]
        for e in dev_cluster.kubectl_json(
            "get", "events", "-n", ns, "--field-selector", "involvedObject.kind=BackupCluster"
        )["items"]
    ]
    assert "CertificateIssued" in reasons
