"""Pure builders of a BackupCluster's children: spec in, Kubernetes object (a dict) out.

Nothing here talks to the API or knows the owner; ``reconcile`` adopts and applies what these
return. Every child carries the same four ``app.kubernetes.io`` labels.
"""

from __future__ import annotations

import base64

from cofre.config import env_name
from cofre.kube import KubeObject
from cofre.operator.spec import (
    MANAGER_PORT,
    NODE_PORT,
    TOKEN_KEY,
    ClusterSpec,
    Names,
    format_duration,
    labels,
    selector_labels,
    storage_selector,
)

STORAGE = "storage-node"
MANAGER = "manager"
TOOLBOX = "toolbox"
DATA_DIR = "/data"
# uid/gid of the image's user; the volumes are made writable for it through fsGroup.
RUN_AS = 65532
# Where a pod finds its certificate, key and CA bundle (a Secret, mounted read-only; the kubelet
# updates the files in place when the Secret changes, and the services re-read them).
TLS_DIR = "/etc/cofre/tls"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_KEY = "ca.crt"
CA_KEY_KEY = "ca.key"
# The CA being rotated in (trusted everywhere before it signs) and the one rotated out (trusted
# until it expires, so certificates it signed stay valid until they are replaced).
NEXT_CA_KEY = "next.crt"
NEXT_CA_KEY_KEY = "next.key"
PREVIOUS_CA_KEY = "previous.crt"
# On the CA Secret: when the next CA joined the bundles (ISO 8601, UTC).
NEXT_CA_SINCE = "cofre.dev/next-ca-since"
CERT_MANAGER_API = "cert-manager.io/v1"
# On the pod templates: the newest CA the pods trust.
CA_ID = "cofre.dev/ca"


def _meta(name: str, namespace: str, cluster: str, component: str) -> KubeObject:
    return {"name": name, "namespace": namespace, "labels": labels(cluster, component)}


def _env(path: tuple[str, ...], value: object) -> KubeObject:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return {"name": env_name(path), "value": text}


def _token_env(names: Names) -> KubeObject:
    return {
        "name": env_name(("token",)),
        "valueFrom": {"secretKeyRef": {"name": names.secret, "key": TOKEN_KEY}},
    }


def pod_security_context() -> KubeObject:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> KubeObject:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probes(port: int) -> KubeObject:
    # HTTPS: the kubelet does not verify the certificate, but the services serve nothing else.
    return {
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port, "scheme": "HTTPS"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTPS"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
    }


def _tmp_volume() -> tuple[KubeObject, KubeObject]:
    """An emptyDir at /tmp: the root filesystem is read-only."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, {"name": "tmp", "mountPath": "/tmp"}


def _pod_meta(cluster: str, component: str, ca_id: str | None) -> KubeObject:
    """A pod template's metadata. ``ca_id`` (the newest CA in the bundle) is an annotation: a CA
    joining the bundle rolls the pods, because a service reads the CA bundle it verifies its
    peers with when it starts (its own certificate it re-reads in place)."""
    meta: KubeObject = {"labels": labels(cluster, component)}
    if ca_id is not None:
        meta["annotations"] = {CA_ID: ca_id}
    return meta


def _tls_volume(secret: str) -> tuple[KubeObject, KubeObject]:
    """The Secret ``secret`` read-only at TLS_DIR."""
    return (
        {"name": "tls", "secret": {"secretName": secret, "defaultMode": 0o440}},
        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
    )


def tls_env() -> list[KubeObject]:
    """The service presents TLS_DIR's certificate and trusts its ca.crt when it calls a peer."""
    return [
        _env(("tls", "cert_file"), f"{TLS_DIR}/{CERT_KEY}"),
        _env(("tls", "key_file"), f"{TLS_DIR}/{KEY_KEY}"),
        _env(("tls", "ca_file"), f"{TLS_DIR}/{CA_KEY}"),
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_tls_secret(
    *, name: str, namespace: str, component: str, cert: bytes, key: bytes, ca: bytes
) -> KubeObject:
    """A service's certificate (``component``: manager or storage-node), its key and the CA
    bundle it trusts, in the layout cert-manager writes too."""
    names = Names(name)
    secret = names.manager_tls if component == MANAGER else names.storage_tls
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(secret, namespace, name, component),
        "type": "kubernetes.io/tls",
        "data": {CERT_KEY: _b64(cert), KEY_KEY: _b64(key), CA_KEY: _b64(ca)},
    }


def build_ca_secret(
    *,
    name: str,
    namespace: str,
    cert: bytes,
    key: bytes,
    next_cert: bytes | None = None,
    next_key: bytes | None = None,
    next_since: str | None = None,
    previous_cert: bytes | None = None,
) -> KubeObject:
    """The cluster's CA: the signing certificate and key, and during a rotation the next or the
    previous CA."""
    data = {CA_KEY: _b64(cert), CA_KEY_KEY: _b64(key)}
    if next_cert is not None and next_key is not None:
        data[NEXT_CA_KEY] = _b64(next_cert)
        data[NEXT_CA_KEY_KEY] = _b64(next_key)
    if previous_cert is not None:
        data[PREVIOUS_CA_KEY] = _b64(previous_cert)
    meta = _meta(Names(name).ca_secret, namespace, name, "ca")
    if next_since is not None:
        meta["annotations"] = {NEXT_CA_SINCE: next_since}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def build_trust_secret(*, name: str, namespace: str, ca: bytes) -> KubeObject:
    """Only the CA bundle: what a client of the cluster needs to trust it, and nothing secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(Names(name).trust_secret, namespace, name, "ca"),
        "type": "Opaque",
        "data": {CA_KEY: _b64(ca)},
    }


def build_certificate(
    spec: ClusterSpec, *, name: str, namespace: str, component: str
) -> KubeObject:
    """A cert-manager Certificate for the manager or the storage nodes, when the spec names an
    issuer: cert-manager writes the same Secret (tls.crt, tls.key, ca.crt) the operator would."""
    issuer = spec.certificates.issuer
    if issuer is None:
        raise ValueError("build_certificate needs spec.certificates.issuer")
    names = Names(name)
    if component == MANAGER:
        secret, dns_names = names.manager_tls, names.manager_dns_names(namespace)
    else:
        secret, dns_names = names.storage_tls, names.storage_dns_names(namespace)
    duration = spec.certificates.duration_s
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": _meta(secret, namespace, name, component),
        "spec": {
            "secretName": secret,
            "secretTemplate": {"labels": labels(name, component)},
            "commonName": dns_names[0],
            "dnsNames": dns_names,
            "duration": format_duration(duration),
            # Renewed when 2/3 of the lifetime has passed, as the operator's own certificates.
            "renewBefore": format_duration(duration // 3),
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
            "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
        },
    }


def _claim(size: str, storage_class: str | None, cluster: str, component: str) -> KubeObject:
    spec: KubeObject = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": labels(cluster, component)},
        "spec": spec,
    }


def build_secret(*, name: str, namespace: str, token: str) -> KubeObject:
    names = Names(name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(names.secret, namespace, name, MANAGER),
        "type": "Opaque",
        # data, not stringData: what is applied is what is stored, so re-applying is a no-op.
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def build_manager_service_account(*, name: str, namespace: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(Names(name).manager, namespace, name, MANAGER),
        "automountServiceAccountToken": True,
    }


def build_manager_role(*, name: str, namespace: str) -> KubeObject:
    """The manager discovers its storage pods: read pods in its own namespace, nothing else."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(Names(name).manager, namespace, name, MANAGER),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }


def build_manager_role_binding(*, name: str, namespace: str) -> KubeObject:
    names = Names(name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(names.manager, namespace, name, MANAGER),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": names.manager,
        },
        "subjects": [{"kind": "ServiceAccount", "name": names.manager, "namespace": namespace}],
    }


def build_storage_service(*, name: str, namespace: str) -> KubeObject:
    """Headless: stable per-pod DNS names for the StatefulSet; clients never balance over it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(Names(name).storage, namespace, name, STORAGE),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(name, STORAGE),
            "ports": [{"name": "https", "port": NODE_PORT, "targetPort": "https"}],
        },
    }


def build_storage_statefulset(
    spec: ClusterSpec,
    *,
    name: str,
    namespace: str,
    image: str,
    replicas: int,
    ca_id: str | None = None,
) -> KubeObject:
    """``replicas`` is what the scale plan allows now, which lags the spec while draining;
    ``ca_id`` names the newest CA the pods trust (``_pod_meta``)."""
    names = Names(name)
    tmp_volume, tmp_mount = _tmp_volume()
    tls_volume, tls_mount = _tls_volume(names.storage_tls)
    container: KubeObject = {
        "name": "storage-node",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["python", "-m", "cofre.storage_node"],
        "ports": [{"name": "https", "containerPort": NODE_PORT}],
        "env": [
            _token_env(names),
            {
                "name": env_name(("node_id",)),
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            _env(("host",), "0.0.0.0"),
            _env(("port",), NODE_PORT),
            _env(("data_dir",), DATA_DIR),
            *tls_env(),
            *metrics_env(spec),
        ],
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, tmp_mount, tls_mount],
        "securityContext": container_security_context(),
        **_probes(NODE_PORT),
    }
    if spec.resources:
        container["resources"] = dict(spec.resources)
    match = selector_labels(name, STORAGE)
    retention = "Delete" if spec.delete_claims_on_delete else "Retain"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(names.storage, namespace, name, STORAGE),
        "spec": {
            "serviceName": names.storage,
            "replicas": replicas,
            # Node ids are the pod names either way; starting all at once is faster.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": match},
            # Scale-down removes claims only after the drain; deletion follows the spec.
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": retention,
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": _pod_meta(name, STORAGE, ca_id),
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": match},
                        }
                    ],
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": match},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [container],
                    "volumes": [tmp_volume, tls_volume],
                },
            },
            "volumeClaimTemplates": [_claim(spec.storage_size, spec.storage_class, name, STORAGE)],
        },
    }


def build_storage_disruption_budget(*, name: str, namespace: str) -> KubeObject:
    """Voluntary evictions (node drains) take one storage node at a time, never a second copy."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(Names(name).storage, namespace, name, STORAGE),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(name, STORAGE)}},
    }


def build_manager_service(*, name: str, namespace: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(Names(name).manager, namespace, name, MANAGER),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, MANAGER),
            "ports": [{"name": "https", "port": MANAGER_PORT, "targetPort": "https"}],
        },
    }


def manager_env(spec: ClusterSpec, *, name: str) -> list[KubeObject]:
    """The manager's settings, named as cofre.config derives them."""
    return [
        _token_env(Names(name)),
        _env(("host",), "0.0.0.0"),
        _env(("port",), MANAGER_PORT),
        _env(("data_dir",), DATA_DIR),
        _env(("placement", "replication_factor"), spec.replication_factor),
        _env(("placement", "primary_keeps_copy"), spec.primary_keeps_copy),
        _env(("placement", "latency_weight"), spec.latency_weight),
        _env(("placement", "stored_bytes_weight"), spec.stored_bytes_weight),
        _env(("discovery", "backend"), "kubernetes"),
        {
            "name": env_name(("discovery", "namespace")),
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        _env(("discovery", "selector"), storage_selector(name)),
        _env(("discovery", "node_port"), NODE_PORT),
        # Nodes are reached by their pod DNS names, which their certificate covers.
        _env(("discovery", "node_scheme"), "https"),
        _env(("discovery", "node_service"), Names(name).storage),
        *tls_env(),
        *metrics_env(spec),
    ]


def metrics_env(spec: ClusterSpec) -> list[KubeObject]:
    """/metrics without the token, when the spec asks (absent otherwise: an upgrade of the
    operator restarts no pod of a cluster that does not ask)."""
    return [_env(("metrics", "public"), True)] if spec.public_metrics else []


def build_manager_statefulset(
    spec: ClusterSpec, *, name: str, namespace: str, image: str, ca_id: str | None = None
) -> KubeObject:
    names = Names(name)
    tmp_volume, tmp_mount = _tmp_volume()
    tls_volume, tls_mount = _tls_volume(names.manager_tls)
    container: KubeObject = {
        "name": "manager",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["python", "-m", "cofre.manager"],
        "ports": [{"name": "https", "containerPort": MANAGER_PORT}],
        "env": manager_env(spec, name=name),
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, tmp_mount, tls_mount],
        "securityContext": container_security_context(),
        **_probes(MANAGER_PORT),
    }
    if spec.manager_resources:
        container["resources"] = dict(spec.manager_resources)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(names.manager, namespace, name, MANAGER),
        "spec": {
            "serviceName": names.manager,
            # One manager: the catalog is one SQLite file on one volume.
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(name, MANAGER)},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete" if spec.delete_claims_on_delete else "Retain",
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": _pod_meta(name, MANAGER, ca_id),
                "spec": {
                    "serviceAccountName": names.manager,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [tmp_volume, tls_volume],
                },
            },
            "volumeClaimTemplates": [
                _claim(spec.manager_storage_size, spec.manager_storage_class, name, MANAGER)
            ],
        },
    }


def cli_env(*, name: str, namespace: str) -> list[KubeObject]:
    """What the `cofre` command needs inside the cluster: the manager's URL, the token and the
    CA bundle (mounted from the trust Secret at TLS_DIR)."""
    names = Names(name)
    return [
        {"name": "COFRE_MANAGER", "value": names.manager_url(namespace)},
        _token_env(names),
        {"name": "COFRE_CA", "value": f"{TLS_DIR}/{CA_KEY}"},
    ]


def build_toolbox_deployment(
    spec: ClusterSpec, *, name: str, namespace: str, image: str
) -> KubeObject:
    """A pod with the `cofre` CLI set up: `kubectl exec deploy/<name>-toolbox -- cofre ls`."""
    _, tmp_mount = _tmp_volume()
    tls_volume, tls_mount = _tls_volume(Names(name).trust_secret)
    match = selector_labels(name, TOOLBOX)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(Names(name).toolbox, namespace, name, TOOLBOX),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": labels(name, TOOLBOX)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [
                        {
                            "name": "cofre",
                            "image": image,
                            "imagePullPolicy": spec.image_pull_policy,
                            "command": ["sleep", "infinity"],
                            "workingDir": "/tmp",
                            "env": [
                                *cli_env(name=name, namespace=namespace),
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "volumeMounts": [tmp_mount, tls_mount],
                            "securityContext": container_security_context(),
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}, tls_volume],
                },
            },
        },
    }
