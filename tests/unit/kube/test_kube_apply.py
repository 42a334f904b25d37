"""Server-side apply, get and delete against a fake API server on loopback."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cofre.kube import ApiConfig, KubeError, open_api


@pytest.fixture
async def server(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[list[Any], ApiConfig]:
    seen: list[Any] = []

    async def patch(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, dict(request.query), request.content_type))
        body = json.loads(await request.read())
        if body["metadata"]["name"] == "conflicted":
            return web.json_response({"message": "conflict", "reason": "Conflict"}, status=409)
        return web.json_response({**body, "status": {"applied": True}})

    async def get(request: web.Request) -> web.Response:
        if request.match_info["name"] == "missing":
            return web.json_response({"message": "not found", "reason": "NotFound"}, status=404)
        return web.json_response({"metadata": {"name": request.match_info["name"]}})

    async def delete(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, json.loads(await request.read())))
        if request.match_info["name"] == "missing":
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response({})

    async def create(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.content_type))
        body = json.loads(await request.read())
        if body["metadata"]["name"] == "taken":
            return web.json_response({"message": "exists", "reason": "AlreadyExists"}, status=409)
        return web.json_response(body, status=201)

    async def patch_status(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.content_type))
        return web.json_response({"status": json.loads(await request.read())["status"]})

    app = web.Application()
    app.router.add_post("/apis/apps/v1/namespaces/ns/statefulsets", create)
    app.router.add_patch("/apis/apps/v1/namespaces/ns/statefulsets/{name}/status", patch_status)
    route = "/apis/apps/v1/namespaces/ns/statefulsets/{name}"
    app.router.add_patch(route, patch)
    app.router.add_get(route, get)
    app.router.add_delete(route, delete)
    srv = await aiohttp_server(app, host="127.0.0.1")
    return seen, ApiConfig(base_url=str(srv.make_url("")).rstrip("/"))


def _sts(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "ns"},
    }


async def test_apply_is_a_forced_server_side_apply(server: tuple[list[Any], ApiConfig]) -> None:
    seen, config = server
    async with open_api(config) as api:
        result = await api.apply(_sts("store"))
    assert result["status"] == {"applied": True}
    method, path, query, ctype = seen[0]
    assert (method, path) == ("PATCH", "/apis/apps/v1/namespaces/ns/statefulsets/store")
    assert query == {"fieldManager": "cofre", "force": "true"}
    assert ctype == "application/apply-patch+yaml"


async def test_errors_carry_status_and_reason(server: tuple[list[Any], ApiConfig]) -> None:
    _, config = server
    async with open_api(config) as api:
        with pytest.raises(KubeError) as info:
            await api.apply(_sts("conflicted"))
    assert (info.value.status, info.value.reason) == (409, "Conflict")


async def test_get_and_delete_treat_absence_as_an_answer(
    server: tuple[list[Any], ApiConfig],
) -> None:
    _, config = server
    path = "/apis/apps/v1/namespaces/ns/statefulsets/"
    async with open_api(config) as api:
        assert await api.get(path + "missing") is None
        found = await api.get(path + "there")
        assert found is not None and found["metadata"]["name"] == "there"
        assert await api.delete(path + "missing") is False
        assert await api.delete(path + "there") is True


async def test_unreachable_api_server_is_a_kube_error() -> None:
    async with open_api(ApiConfig(base_url="http://127.0.0.1:9")) as api:
        with pytest.raises(KubeError) as info:
            await api.get("/api/v1/namespaces/ns/pods/x")
    assert info.value.status == 0


async def test_create_never_overwrites(server: tuple[list[Any], ApiConfig]) -> None:
    seen, config = server
    async with open_api(config) as api:
        made = await api.create(_sts("fresh"))
        with pytest.raises(KubeError) as info:
            await api.create(_sts("taken"))
    assert made["metadata"]["name"] == "fresh"
    assert seen[0] == ("POST", "/apis/apps/v1/namespaces/ns/statefulsets", "application/json")
    assert (info.value.status, info.value.reason) == (409, "AlreadyExists")


async def test_patch_status_merges_into_the_status_subresource(
    server: tuple[list[Any], ApiConfig],
) -> None:
    seen, config = server
    async with open_api(config) as api:
        result = await api.patch_status(
            "/apis/apps/v1/namespaces/ns/statefulsets/store", {"phase": "Ready"}
        )
    assert result == {"status": {"phase": "Ready"}}
    assert seen == [
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/statefulsets/store/status",
            "application/merge-patch+json",
        )
    ]
