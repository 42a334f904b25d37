"""Provisions PersistentVolumes of the `standard` StorageClass as host directories.

Every node runs on this one host, so a hostPath volume is reachable from any node and the
data outlives its pods. Released volumes are deleted with their directory."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any

from devcluster import config
from devcluster.api import Api, ApiError

VOLUME_ROOT = config.STATE_DIR / "volumes"


def _pv_for(pvc: dict[str, Any]) -> dict[str, Any]:
    meta = pvc["metadata"]
    name = f"pvc-{meta['uid']}"
    path = VOLUME_ROOT / name
    path.mkdir(parents=True, exist_ok=True)
    # Pods may run as any user; the directory is theirs to write.
    path.chmod(0o777)
    spec = pvc["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": config.PROVISIONER_NAME},
        },
        "spec": {
            "capacity": {
                "storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
            },
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": config.STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def reconcile(api: Api) -> None:
    for pvc in api.get("/api/v1/persistentvolumeclaims")["items"]:
        if pvc["spec"].get("storageClassName") != config.STORAGE_CLASS:
            continue
        if pvc.get("status", {}).get("phase") != "Pending" or pvc["spec"].get("volumeName"):
            continue
        pv = _pv_for(pvc)
        try:
            api.request("POST", "/api/v1/persistentvolumes", pv)
            print(
                f"provisioned {pv['metadata']['name']} for "
                f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}",
                flush=True,
            )
        except ApiError as e:
            if e.status != 409:
                raise
    for pv in api.get("/api/v1/persistentvolumes")["items"]:
        annotations = pv["metadata"].get("annotations", {})
        if annotations.get("pv.kubernetes.io/provisioned-by") != config.PROVISIONER_NAME:
            continue
        if pv.get("status", {}).get("phase") not in ("Released", "Failed"):
            continue
        if pv["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            continue
        shutil.rmtree(pv["spec"]["hostPath"]["path"], ignore_errors=True)
        try:
            api.request("DELETE", f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
            print(f"deleted {pv['metadata']['name']}", flush=True)
        except ApiError as e:
            if e.status != 404:
                raise


def main() -> None:
    api = Api()
    while True:
        try:
            reconcile(api)
        except (OSError, ApiError) as e:
            print(f"provisioner: {e}", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
