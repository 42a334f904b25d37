"""Children of a BackupCluster, built from its spec."""

from __future__ import annotations

from typing import Any

import pytest

from cofre.operator import builders
from cofre.operator.spec import ClusterSpec, parse_spec, storage_selector

NAME, NS, IMAGE = "demo", "backup", "localhost/cofre:dev"
SPEC = parse_spec({"storageNodes": 4, "replicationFactor": 2, "storage": {"size": "5Gi"}})


def _all_children(spec: ClusterSpec = SPEC) -> list[dict[str, Any]]:
    kw = {"name": NAME, "namespace": NS}
    return [
        builders.build_secret(token="t0ken", **kw),
        builders.build_manager_service_account(**kw),
        builders.build_manager_role(**kw),
        builders.build_manager_role_binding(**kw),
        builders.build_storage_service(**kw),
        builders.build_storage_disruption_budget(**kw),
        builders.build_storage_statefulset(spec, image=IMAGE, replicas=4, **kw),
        builders.build_manager_service(**kw),
        builders.build_manager_statefulset(spec, image=IMAGE, **kw),
        builders.build_toolbox_deployment(spec, image=IMAGE, **kw),
        builders.build_ca_secret(cert=b"C", key=b"K", **kw),
        builders.build_trust_secret(ca=b"C", **kw),
        builders.build_tls_secret(component="manager", cert=b"c", key=b"k", ca=b"C", **kw),
        builders.build_tls_secret(component="storage-node", cert=b"c", key=b"k", ca=b"C", **kw),
    ]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_child_is_labelled_namespaced_and_owner_free() -> None:
    for obj in _all_children():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cofre"
        assert labels["app.kubernetes.io/instance"] == NAME
        assert labels["app.kubernetes.io/managed-by"] == "cofre-operator"
        assert labels["app.kubernetes.io/component"] in {"storage-node", "manager", "toolbox", "ca"}
        assert obj["metadata"]["namespace"] == NS
        assert obj["metadata"]["name"].startswith(f"{NAME}-")
        # The owner reference is added by reconcile (kopf.adopt), not by builders.
        assert "ownerReferences" not in obj["metadata"]


def test_builders_are_pure() -> None:
    assert _all_children() == _all_children()


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("index", [6, 8, 9])
def test_pods_are_hardened(index: int) -> None:
    obj = _all_children()[index]
    pod = _pod_spec(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


def test_storage_statefulset() -> None:
    sts = builders.build_storage_statefulset(SPEC, name=NAME, namespace=NS, image=IMAGE, replicas=6)
    spec = sts["spec"]
    assert spec["replicas"] == 6
    assert spec["serviceName"] == "demo-storage"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = _pod_spec(sts)
    (c,) = pod["containers"]
    assert c["image"] == IMAGE
    assert c["command"] == ["python", "-m", "cofre.storage_node"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081, "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081, "scheme": "HTTPS"}
    env = _env(c)
    assert env["COFRE_NODE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["COFRE_TOKEN"] == {"secretKeyRef": {"name": "demo-token", "key": "token"}}
    assert env["COFRE_DATA_DIR"] == "/data"
    assert env["COFRE_PORT"] == "8081"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "storageClassName" not in claim["spec"]
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_storage_claims_follow_delete_and_class_settings() -> None:
    spec = parse_spec(
        {"storage": {"size": "1Gi", "storageClassName": "fast", "deleteClaimsOnDelete": True}}
    )
    sts = builders.build_storage_statefulset(spec, name=NAME, namespace=NS, image=IMAGE, replicas=3)
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_storage_resources_pass_through() -> None:
    spec = parse_spec({"resources": {"limits": {"memory": "512Mi"}}})
    sts = builders.build_storage_statefulset(spec, name=NAME, namespace=NS, image=IMAGE, replicas=3)
    assert _pod_spec(sts)["containers"][0]["resources"] == {"limits": {"memory": "512Mi"}}


def test_manager_statefulset_env_matches_config_names() -> None:
    spec = parse_spec(
        {
            "storageNodes": 3,
            "replicationFactor": 3,
            "primaryKeepsCopy": True,
            "placement": {"latencyWeight": 0.2, "storedBytesWeight": 0.8},
        }
    )
    sts = builders.build_manager_statefulset(spec, name=NAME, namespace=NS, image=IMAGE)
    assert sts["spec"]["replicas"] == 1
    pod = _pod_spec(sts)
    assert pod["serviceAccountName"] == "demo-manager"
    (c,) = pod["containers"]
    assert c["command"] == ["python", "-m", "cofre.manager"]
    assert c["readinessProbe"]["httpGet"]["port"] == 8080
    env = _env(c)
    assert env["COFRE_PLACEMENT_REPLICATION_FACTOR"] == "3"
    assert env["COFRE_PLACEMENT_PRIMARY_KEEPS_COPY"] == "true"
    assert env["COFRE_PLACEMENT_LATENCY_WEIGHT"] == "0.2"
    assert env["COFRE_PLACEMENT_STORED_BYTES_WEIGHT"] == "0.8"
    assert env["COFRE_DISCOVERY_BACKEND"] == "kubernetes"
    assert env["COFRE_DISCOVERY_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["COFRE_DISCOVERY_NODE_PORT"] == "8081"
    assert env["COFRE_DISCOVERY_SELECTOR"] == storage_selector(NAME)
    assert env["COFRE_HOST"] == "0.0.0.0"
    # Nodes by their pod DNS names under the headless Service: what their certificate covers.
    assert env["COFRE_DISCOVERY_NODE_SCHEME"] == "https"
    assert env["COFRE_DISCOVERY_NODE_SERVICE"] == "demo-storage"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"
    }


def test_discovery_selector_matches_storage_pods_only() -> None:
    sts = builders.build_storage_statefulset(SPEC, name=NAME, namespace=NS, image=IMAGE, replicas=1)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    wanted = dict(part.split("=") for part in storage_selector(NAME).split(","))
    assert wanted.items() <= pod_labels.items()
    manager = builders.build_manager_statefulset(SPEC, name=NAME, namespace=NS, image=IMAGE)
    assert not wanted.items() <= manager["spec"]["template"]["metadata"]["labels"].items()
    other = builders.build_storage_statefulset(
        SPEC, name="other", namespace=NS, image=IMAGE, replicas=1
    )
    assert not wanted.items() <= other["spec"]["template"]["metadata"]["labels"].items()


def test_manager_role_reads_pods_only() -> None:
    role = builders.build_manager_role(name=NAME, namespace=NS)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = builders.build_manager_role_binding(name=NAME, namespace=NS)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "demo-manager", "namespace": NS}
    ]


def test_services_select_their_pods() -> None:
    storage = builders.build_storage_service(name=NAME, namespace=NS)
    assert storage["spec"]["clusterIP"] == "None"
    assert storage["spec"]["selector"]["app.kubernetes.io/component"] == "storage-node"
    manager = builders.build_manager_service(name=NAME, namespace=NS)
    assert manager["spec"]["selector"]["app.kubernetes.io/component"] == "manager"
    assert manager["spec"]["ports"][0]["port"] == 8080


def test_disruption_budget_covers_the_storage_pods() -> None:
    pdb = builders.build_storage_disruption_budget(name=NAME, namespace=NS)
    sts = builders.build_storage_statefulset(SPEC, name=NAME, namespace=NS, image=IMAGE, replicas=4)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == sts["spec"]["selector"]


def test_secret_carries_the_token() -> None:
    secret = builders.build_secret(name=NAME, namespace=NS, token="abc")
    assert secret["metadata"]["name"] == "demo-token"
    assert secret["data"] == {"token": "YWJj"}  # base64 of "abc"


def test_toolbox_has_cli_env() -> None:
    dep = builders.build_toolbox_deployment(SPEC, name=NAME, namespace=NS, image=IMAGE)
    env = _env(_pod_spec(dep)["containers"][0])
    assert env["COFRE_MANAGER"] == "https://demo-manager.backup.svc:8080"
    assert env["COFRE_TOKEN"] == {"secretKeyRef": {"name": "demo-token", "key": "token"}}
    # The CA bundle from the Secret that holds nothing else; never plain HTTP.
    assert env["COFRE_CA"] == "/etc/cofre/tls/ca.crt"
    assert "COFRE_INSECURE" not in env
    pod = _pod_spec(dep)
    assert {"name": "tls", "secret": {"secretName": "demo-cofre-trust", "defaultMode": 0o440}} in (
        pod["volumes"]
    )
    assert {"name": "tls", "mountPath": "/etc/cofre/tls", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"]
    )


def test_public_metrics_reaches_the_manager_and_the_nodes_only_when_asked() -> None:
    public = parse_spec({"monitoring": {"publicMetrics": True}})
    kw = {"name": NAME, "namespace": NS, "image": IMAGE}
    for spec, want in ((public, "true"), (SPEC, None)):
        manager = builders.build_manager_statefulset(spec, **kw)
        storage = builders.build_storage_statefulset(spec, replicas=3, **kw)
        for sts in (manager, storage):
            (c,) = _pod_spec(sts)["containers"]
            assert _env(c).get("COFRE_METRICS_PUBLIC") == want


def test_services_name_the_port_the_service_monitor_scrapes() -> None:
    # charts/cofre/templates/servicemonitor.yaml selects these labels and this port name.
    for svc in (
        builders.build_manager_service(name=NAME, namespace=NS),
        builders.build_storage_service(name=NAME, namespace=NS),
    ):
        labels = svc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cofre"
        assert labels["app.kubernetes.io/managed-by"] == "cofre-operator"
        assert labels["app.kubernetes.io/component"] in ("manager", "storage-node")
        assert [p["name"] for p in svc["spec"]["ports"]] == ["https"]


@pytest.mark.parametrize(
    ("component", "secret"),
    [("manager", "demo-cofre-tls-manager"), ("storage", "demo-cofre-tls-storage")],
)
def test_services_present_their_certificate_and_trust_the_bundle(
    component: str, secret: str
) -> None:
    kw = {"name": NAME, "namespace": NS, "image": IMAGE}
    sts = (
        builders.build_manager_statefulset(SPEC, **kw)
        if component == "manager"
        else builders.build_storage_statefulset(SPEC, replicas=3, **kw)
    )
    pod = _pod_spec(sts)
    (c,) = pod["containers"]
    env = _env(c)
    assert env["COFRE_TLS_CERT_FILE"] == "/etc/cofre/tls/tls.crt"
    assert env["COFRE_TLS_KEY_FILE"] == "/etc/cofre/tls/tls.key"
    assert env["COFRE_TLS_CA_FILE"] == "/etc/cofre/tls/ca.crt"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == secret
    assert {"name": "tls", "mountPath": "/etc/cofre/tls", "readOnly": True} in c["volumeMounts"]
    # The kubelet probes over HTTPS too: the services serve nothing else.
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_tls_secrets_hold_what_the_pods_mount() -> None:
    kw = {"name": NAME, "namespace": NS}
    manager = builders.build_tls_secret(component="manager", cert=b"c", key=b"k", ca=b"C", **kw)
    assert manager["metadata"]["name"] == "demo-cofre-tls-manager"
    assert manager["type"] == "kubernetes.io/tls"
    assert manager["data"] == {"tls.crt": "Yw==", "tls.key": "aw==", "ca.crt": "Qw=="}
    storage = builders.build_tls_secret(
        component="storage-node", cert=b"c", key=b"k", ca=b"C", **kw
    )
    assert storage["metadata"]["name"] == "demo-cofre-tls-storage"
    trust = builders.build_trust_secret(ca=b"C", **kw)
    assert (trust["metadata"]["name"], trust["data"]) == ("demo-cofre-trust", {"ca.crt": "Qw=="})


def test_ca_secret_keeps_a_rotation_in_progress() -> None:
    kw = {"name": NAME, "namespace": NS}
    plain = builders.build_ca_secret(cert=b"C", key=b"K", **kw)
    assert plain["metadata"]["name"] == "demo-cofre-ca"
    assert set(plain["data"]) == {"ca.crt", "ca.key"}
    assert "annotations" not in plain["metadata"]
    rotating = builders.build_ca_secret(
        cert=b"C",
        key=b"K",
        next_cert=b"N",
        next_key=b"n",
        next_since="2026-01-01T00:00:00+00:00",
        previous_cert=b"P",
        **kw,
    )
    assert set(rotating["data"]) == {"ca.crt", "ca.key", "next.crt", "next.key", "previous.crt"}
    assert rotating["metadata"]["annotations"] == {
        "cofre.dev/next-ca-since": "2026-01-01T00:00:00+00:00"
    }


def test_cert_manager_certificates_name_the_issuer_and_the_secrets_pods_mount() -> None:
    spec = parse_spec(
        {
            "certificates": {
                "issuer": {"name": "corp-ca", "kind": "ClusterIssuer"},
                "duration": "720h",
            }
        }
    )
    kw = {"name": NAME, "namespace": NS}
    manager = builders.build_certificate(spec, component="manager", **kw)
    assert (manager["apiVersion"], manager["kind"]) == ("cert-manager.io/v1", "Certificate")
    cert = manager["spec"]
    assert cert["secretName"] == "demo-cofre-tls-manager"
    assert cert["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert cert["commonName"] == "demo-manager.backup.svc"
    assert cert["dnsNames"] == [
        "demo-manager.backup.svc",
        "demo-manager",
        "demo-manager.backup",
        "demo-manager.backup.svc.cluster.local",
        "localhost",
    ]
    assert (cert["duration"], cert["renewBefore"]) == ("720h0m0s", "240h0m0s")
    assert cert["privateKey"]["rotationPolicy"] == "Always"
    assert {"server auth", "client auth"} <= set(cert["usages"])
    storage = builders.build_certificate(spec, component="storage-node", **kw)["spec"]
    assert storage["secretName"] == "demo-cofre-tls-storage"
    assert "*.demo-storage.backup.svc" in storage["dnsNames"]
    assert "*.demo-storage.backup.svc.cluster.local" in storage["dnsNames"]
    with pytest.raises(ValueError, match="issuer"):
        builders.build_certificate(SPEC, component="manager", **kw)
