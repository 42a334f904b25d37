"""Pure builders of a BackupCluster's children: spec in, Kubernetes object (a dict) out.

Nothing here talks to the API or knows the owner; ``reconcile`` adopts and applies what these
return. Every child carries the same four ``app.kubernetes.io`` labels.
"""

from __future__ import annotations

import base64

from cofre.config import env_name
from cofre.kube import KubeObject
from cofre.operator.spec import (
    CLI_KEY_KEY,
    MANAGER_PORT,
    NODE_PORT,
    TOKEN_KEY,
    ClusterSpec,
    Names,
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
    return {
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
    }


def _tmp_volume() -> tuple[KubeObject, KubeObject]:
    """An emptyDir at /tmp: the root filesystem is read-only."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, {"name": "tmp", "mountPath": "/tmp"}


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


def build_cli_key_secret(*, name: str, namespace: str, key: str) -> KubeObject:
    """The in-cluster CLI's key, role backup: it adds backups and can delete none."""
    names = Names(name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(names.cli_key, namespace, name, TOOLBOX),
        "type": "Opaque",
        "data": {CLI_KEY_KEY: base64.b64encode(key.encode()).decode()},
    }


def build_toolbox_service_account(*, name: str, namespace: str) -> KubeObject:
    """The toolbox's own account, bound to no role and without an API token in the pod: the
    CLI talks to cofre, never to Kubernetes."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(Names(name).toolbox, namespace, name, TOOLBOX),
        "automountServiceAccountToken": False,
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
            "ports": [{"name": "http", "port": NODE_PORT, "targetPort": "http"}],
        },
    }


def build_storage_statefulset(
    spec: ClusterSpec, *, name: str, namespace: str, image: str, replicas: int
) -> KubeObject:
    """``replicas`` is what the scale plan allows now, which lags the spec while draining."""
    names = Names(name)
    tmp_volume, tmp_mount = _tmp_volume()
    container: KubeObject = {
        "name": "storage-node",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["python", "-m", "cofre.storage_node"],
        "ports": [{"name": "http", "containerPort": NODE_PORT}],
        "env": [
            _token_env(names),
            {
                "name": env_name(("node_id",)),
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            _env(("host",), "0.0.0.0"),
            _env(("port",), NODE_PORT),
            _env(("data_dir",), DATA_DIR),
            *metrics_env(spec),
        ],
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, tmp_mount],
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
                "metadata": {"labels": labels(name, STORAGE)},
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
                    "volumes": [tmp_volume],
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
            "ports": [{"name": "http", "port": MANAGER_PORT, "targetPort": "http"}],
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
        *metrics_env(spec),
    ]


def metrics_env(spec: ClusterSpec) -> list[KubeObject]:
    """/metrics without the token, when the spec asks (absent otherwise: an upgrade of the
    operator restarts no pod of a cluster that does not ask)."""
    return [_env(("metrics", "public"), True)] if spec.public_metrics else []


def build_manager_statefulset(
    spec: ClusterSpec, *, name: str, namespace: str, image: str
) -> KubeObject:
    names = Names(name)
    tmp_volume, tmp_mount = _tmp_volume()
    container: KubeObject = {
        "name": "manager",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["python", "-m", "cofre.manager"],
        "ports": [{"name": "http", "containerPort": MANAGER_PORT}],
        "env": manager_env(spec, name=name),
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, tmp_mount],
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
                "metadata": {"labels": labels(name, MANAGER)},
                "spec": {
                    "serviceAccountName": names.manager,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [tmp_volume],
                },
            },
            "volumeClaimTemplates": [
                _claim(spec.manager_storage_size, spec.manager_storage_class, name, MANAGER)
            ],
        },
    }


def cli_env(*, name: str, namespace: str) -> list[KubeObject]:
    """What the `cofre` command needs inside the cluster: the manager's URL and a backup key
    from its own Secret; never the cluster token, so a CLI pod cannot delete a backup."""
    names = Names(name)
    return [
        {"name": "COFRE_MANAGER", "value": names.manager_url(namespace)},
        {
            "name": env_name(("key",)),
            "valueFrom": {"secretKeyRef": {"name": names.cli_key, "key": CLI_KEY_KEY}},
        },
    ]


def build_toolbox_deployment(
    spec: ClusterSpec, *, name: str, namespace: str, image: str
) -> KubeObject:
    """A pod with the `cofre` CLI set up: `kubectl exec deploy/<name>-toolbox -- cofre ls`."""
    _, tmp_mount = _tmp_volume()
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
                    "serviceAccountName": Names(name).toolbox,
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
                            "volumeMounts": [tmp_mount],
                            "securityContext": container_security_context(),
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
