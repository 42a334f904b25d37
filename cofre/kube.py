"""The only module that calls the Kubernetes API.

Plain aiohttp against the API server: in-cluster credentials (the pod's ServiceAccount token,
re-read on every request because the kubelet rotates it) or, outside a cluster, the kubeconfig as
the ``kubernetes`` package reads it. Objects are plain dicts; writes are server-side apply, so
create-or-patch is one idempotent request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

# A Kubernetes object (or a part of one: a spec, a status, an event) as the API serves it.
# Free-form JSON by nature: the API server validates it against its own schemas, and cofre
# reads the few fields it needs where it needs them.
KubeObject = dict[str, Any]

SERVICEACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FIELD_MANAGER = "cofre"
# seconds the API server keeps one watch open; a re-watch from the last version is cheap.
WATCH_TIMEOUT_S = 240
# seconds between retries of a failed list or watch, doubling up to the maximum.
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0

# (apiVersion, kind) -> plural resource name, for every kind cofre reads or writes.
_PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Pod"): "pods",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("cofre.dev/v1alpha1", "BackupCluster"): "backupclusters",
    ("cert-manager.io/v1", "Certificate"): "certificates",
}


class KubeError(Exception):
    """An API request that failed; ``status`` is the HTTP status (0: not reached)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PodView:
    name: str
    ip: str | None
    ready: bool
    deleting: bool


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Where the API server is and how to authenticate to it."""

    base_url: str
    ca_file: str | None = None
    verify: bool = True
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    # Read before each request when set (in-cluster tokens rotate).
    token_file: Path | None = None

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.base_url.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def current_namespace() -> str:
    """The namespace this pod runs in, or "default" outside a cluster."""
    try:
        return (SERVICEACCOUNT_DIR / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


def load_config() -> ApiConfig:
    """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    token_file = SERVICEACCOUNT_DIR / "token"
    if host and token_file.exists():
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        return ApiConfig(
            base_url=f"https://{host}:{port}",
            ca_file=str(SERVICEACCOUNT_DIR / "ca.crt"),
            token_file=token_file,
        )
    # Only outside a cluster: the kubernetes package knows every kubeconfig variant.
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise KubeError(f"no in-cluster credentials and no usable kubeconfig: {exc}") from exc
    bearer = str(cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization") or "")
    return ApiConfig(
        base_url=str(cfg.host).rstrip("/"),
        ca_file=cfg.ssl_ca_cert,
        verify=bool(cfg.verify_ssl),
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        token=bearer.removeprefix("Bearer ").strip() or None,
    )


def object_path(
    api_version: str, kind: str, *, namespace: str | None, name: str | None = None
) -> str:
    """The REST path of a namespaced object (or its collection when ``name`` is None)."""
    plural = _PLURALS.get((api_version, kind))
    if plural is None:
        raise KubeError(f"unsupported kind {api_version}/{kind}")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    return f"{path}/{name}" if name else path


class KubeApi:
    """A session to the API server (JSON in, JSON out)."""

    def __init__(self, session: aiohttp.ClientSession, config: ApiConfig) -> None:
        self._session = session
        self._config = config
        self._ssl = config.ssl_context()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout_s: float = 30.0,
    ) -> KubeObject:
        headers = {**self._config.headers(), "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        try:
            async with self._session.request(
                method,
                self._config.base_url + path,
                params=params,
                data=data,
                headers=headers,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                payload = await resp.read()
                if resp.status >= 400:
                    raise _error_of(method, path, resp.status, payload)
                result: KubeObject = json.loads(payload) if payload else {}
                return result
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeError(f"{method} {path}: {exc or type(exc).__name__}") from exc

    async def get(self, path: str) -> KubeObject | None:
        """The object at ``path``, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER) -> Any:
        """Create or patch ``obj`` by server-side apply; fields it omits that we set go away."""
        meta = obj["metadata"]
        path = object_path(
            obj["apiVersion"], obj["kind"], namespace=meta.get("namespace"), name=meta["name"]
        )
        return await self.request(
            "PATCH",
            path,
            params={"fieldManager": field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    async def create(self, obj: Mapping[str, Any]) -> KubeObject:
        """Create ``obj``; a KubeError with status 409 if it exists already (never overwrites)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], namespace=meta.get("namespace"))
        return await self.request("POST", path, body=obj)

    async def patch_status(self, path: str, status: Mapping[str, Any]) -> KubeObject:
        """Merge ``status`` into the status subresource of the object at ``path``."""
        return await self.request(
            "PATCH",
            path + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    async def delete(self, path: str) -> bool:
        """Delete (in the background); False if it was already gone."""
        try:
            await self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def list(self, path: str, *, selector: str | None = None) -> tuple[list[KubeObject], str]:
        """-> (items, resourceVersion of the list)"""
        params = {"labelSelector": selector} if selector else None
        result = await self.request("GET", path, params=params)
        return list(result.get("items") or []), str(result["metadata"].get("resourceVersion", ""))

    async def watch(
        self, path: str, *, selector: str | None, resource_version: str
    ) -> AsyncIterator[KubeObject]:
        """Watch events ({type, object}) after ``resource_version`` until the server ends it."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_S),
        }
        if selector:
            params["labelSelector"] = selector
        headers = {**self._config.headers(), "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=WATCH_TIMEOUT_S + 30)
        try:
            async with self._session.get(
                self._config.base_url + path,
                params=params,
                headers=headers,
                ssl=self._ssl,
                timeout=timeout,
            ) as resp:
                if resp.status >= 400:
                    raise _error_of("WATCH", path, resp.status, await resp.read())
                async for line in resp.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeError(f"WATCH {path}: {exc or type(exc).__name__}") from exc


def _error_of(method: str, path: str, status: int, payload: bytes) -> KubeError:
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        message = str(doc.get("message") or doc)
        reason = str(doc.get("reason") or "")
    else:
        message, reason = payload[:200].decode(errors="replace"), ""
    return KubeError(f"{method} {path}: {status} {message}", status=status, reason=reason)


@asynccontextmanager
async def open_api(config: ApiConfig | None = None) -> AsyncIterator[KubeApi]:
    """A ``KubeApi`` for the current credentials, closed on exit."""
    config = config if config is not None else await asyncio.to_thread(load_config)
    # Watch lines are whole objects; allow big ones.
    async with aiohttp.ClientSession(read_bufsize=4 * 1024 * 1024) as session:
        yield KubeApi(session, config)


def pod_view(pod: Mapping[str, Any]) -> PodView:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodView(
        name=str(meta.get("name", "")),
        ip=status.get("podIP") or None,
        ready=ready,
        deleting=meta.get("deletionTimestamp") is not None,
    )


async def watch_pods(
    *, namespace: str, selector: str, config: ApiConfig | None = None
) -> AsyncIterator[list[PodView]]:
    """The pods matching ``selector``, as a full snapshot (sorted by name) after every change.

    Lists, then watches from the list's version; re-lists when the watch version expired (410)
    and retries with backoff on errors. It never ends by itself.
    """
    path = object_path("v1", "Pod", namespace=namespace)
    backoff = RETRY_MIN_S
    last: list[PodView] | None = None
    async with open_api(config) as api:
        while True:
            try:
                items, version = await api.list(path, selector=selector)
                pods = {view.name: view for view in map(pod_view, items)}
                snapshot = sorted(pods.values(), key=lambda v: v.name)
                log.info(
                    "listed pods namespace=%s selector=%s count=%d", namespace, selector, len(pods)
                )
                if snapshot != last:
                    last = snapshot
                    yield snapshot
                backoff = RETRY_MIN_S
                while True:
                    expired = False
                    async for event in api.watch(path, selector=selector, resource_version=version):
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                expired = True
                                break
                            raise KubeError(f"watch error: {obj.get('message', obj)}")
                        version = str(obj.get("metadata", {}).get("resourceVersion", version))
                        if kind == "BOOKMARK":
                            continue
                        view = pod_view(obj)
                        if kind == "DELETED":
                            pods.pop(view.name, None)
                        else:
                            pods[view.name] = view
                        snapshot = sorted(pods.values(), key=lambda v: v.name)
                        if snapshot != last:
                            last = snapshot
                            yield snapshot
                    if expired:
                        log.info("pod watch expired namespace=%s; listing again", namespace)
                        break
            except KubeError as exc:
                if exc.status == 410:
                    log.info("pod watch expired namespace=%s; listing again", namespace)
                    continue
                log.warning(
                    "pod watch failed namespace=%s selector=%s retry_in_s=%.0f: %s",
                    namespace,
                    selector,
                    backoff,
                    exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
