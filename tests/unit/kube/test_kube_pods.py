"""Pod views, REST paths, and the pod watch against a fake API server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cofre import kube
from cofre.kube import ApiConfig, KubeError, PodView, object_path, pod_view, watch_pods

NS, SELECTOR = "backup", "app.kubernetes.io/component=storage-node"


def _pod(
    name: str, *, ready: bool, ip: str | None = "10.88.0.5", deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": "0"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": str(ready)}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


def test_pod_view() -> None:
    assert pod_view(_pod("a", ready=True)) == PodView(
        name="a", ip="10.88.0.5", ready=True, deleting=False
    )
    assert pod_view(_pod("b", ready=False, ip=None, deleting=True)) == PodView(
        name="b", ip=None, ready=False, deleting=True
    )
    assert pod_view({"metadata": {"name": "c"}}).ready is False


def test_object_paths() -> None:
    assert object_path("v1", "Pod", namespace="ns") == "/api/v1/namespaces/ns/pods"
    assert (
        object_path("apps/v1", "StatefulSet", namespace="ns", name="x")
        == "/apis/apps/v1/namespaces/ns/statefulsets/x"
    )
    assert (
        object_path("rbac.authorization.k8s.io/v1", "Role", namespace="ns", name="r")
        == "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles/r"
    )
    with pytest.raises(KubeError, match="unsupported kind"):
        object_path("v1", "Potato", namespace="ns")


def test_current_namespace_defaults_outside_a_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(kube, "SERVICEACCOUNT_DIR", tmp_path / "absent")
    assert kube.current_namespace() == "default"
    (tmp_path / "namespace").write_text("backup\n")
    monkeypatch.setattr(kube, "SERVICEACCOUNT_DIR", tmp_path)
    assert kube.current_namespace() == "backup"


class FakeApi:
    """Scripted list answers and watch streams; records the requests it got."""

    def __init__(self) -> None:
        self.lists: list[tuple[int, list[dict[str, Any]], str]] = []
        self.watches: list[list[dict[str, Any]] | None] = []  # None: stay open
        self.requests: list[dict[str, str]] = []
        self.tokens: list[str | None] = []

    async def pods(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        self.tokens.append(request.headers.get("Authorization"))
        if request.query.get("labelSelector") != SELECTOR:
            return web.json_response({"message": "bad selector"}, status=400)
        if request.query.get("watch") != "1":
            status, items, version = self.lists.pop(0)
            if status != 200:
                return web.json_response(
                    {"message": "boom", "reason": "InternalError"}, status=status
                )
            return web.json_response({"items": items, "metadata": {"resourceVersion": version}})
        events = self.watches.pop(0) if self.watches else None
        resp = web.StreamResponse()
        await resp.prepare(request)
        if events is None:
            await asyncio.Event().wait()  # open until the client goes away
        for event in events or []:
            await resp.write(json.dumps(event).encode() + b"\n")
        await resp.write_eof()
        return resp


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> tuple[FakeApi, ApiConfig]:
    api = FakeApi()
    app = web.Application()
    app.router.add_get(f"/api/v1/namespaces/{NS}/pods", api.pods)
    server = await aiohttp_server(app, host="127.0.0.1")
    config = ApiConfig(base_url=str(server.make_url("")).rstrip("/"), token="sekret")
    return api, config


def _ev(kind: str, pod: dict[str, Any], version: str) -> dict[str, Any]:
    obj = json.loads(json.dumps(pod))
    obj["metadata"]["resourceVersion"] = version
    return {"type": kind, "object": obj}


async def _take(config: ApiConfig, count: int) -> list[list[PodView]]:
    out: list[list[PodView]] = []

    async def run() -> None:
        async for snapshot in watch_pods(namespace=NS, selector=SELECTOR, config=config):
            out.append(snapshot)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), timeout=30)
    return out


async def test_watch_pods_lists_then_follows_changes(fake: tuple[FakeApi, ApiConfig]) -> None:
    api, config = fake
    a, b, c = _pod("a", ready=False), _pod("b", ready=True), _pod("c", ready=True)
    api.lists = [(200, [b, a], "1"), (200, [_pod("a", ready=True), c], "9")]
    api.watches = [
        [
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "2"}}},
            _ev("MODIFIED", _pod("a", ready=True), "3"),
            _ev("ADDED", c, "4"),
            _ev("MODIFIED", c, "5"),  # no visible change: no new snapshot
            _ev("DELETED", b, "6"),
            {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}},
        ],
        [_ev("MODIFIED", _pod("c", ready=False, deleting=True), "10")],
    ]
    snaps = await _take(config, 5)
    names = [[(p.name, p.ready, p.deleting) for p in s] for s in snaps]
    assert names == [
        [("a", False, False), ("b", True, False)],
        [("a", True, False), ("b", True, False)],
        [("a", True, False), ("b", True, False), ("c", True, False)],
        [("a", True, False), ("c", True, False)],
        # the re-list after 410 saw nothing new, so the next snapshot is the watch's
        [("a", True, False), ("c", False, True)],
    ]
    watches = [r for r in api.requests if r.get("watch") == "1"]
    assert [w["resourceVersion"] for w in watches[:2]] == ["1", "9"]
    assert set(api.tokens) == {"Bearer sekret"}


async def test_watch_pods_retries_after_errors(
    fake: tuple[FakeApi, ApiConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, config = fake
    monkeypatch.setattr(kube, "RETRY_MIN_S", 0.01)
    api.lists = [(500, [], ""), (200, [_pod("a", ready=True)], "1")]
    api.watches = [[_ev("ADDED", _pod("b", ready=False), "2")]]
    snaps = await _take(config, 2)
    assert [[p.name for p in s] for s in snaps] == [["a"], ["a", "b"]]
    assert len([r for r in api.requests if r.get("watch") != "1"]) == 2
