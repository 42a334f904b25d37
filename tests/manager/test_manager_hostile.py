"""Hostile requests a fuzzer or an attacker sends are 400 problems naming the field, never a 500,
never an error in the log, and leave nothing behind: each case below answered 500 (with a
traceback) or was accepted before the wire models."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from .conftest import ClusterFactory

BIG = str(2**64)
DEEP = "[" * 100_000 + "]" * 100_000


def _raw(text: str) -> dict[str, Any]:
    return {"data": text.encode(), "headers_extra": {"Content-Type": "application/json"}}


CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/uploads", _raw('{"name": "a", "size": 1, "mtime": NaN}'), "body.mtime"),
    ("POST", "/v1/uploads", _raw('{"name": "a", "size": 1, "mtime": 1e999}'), "body.mtime"),
    ("POST", "/v1/uploads", _raw(f'{{"name": "a", "size": 1, "mode": {BIG}}}'), "body.mode"),
    ("POST", "/v1/uploads", _raw(f'{{"name": "a", "size": {BIG}}}'), "body.size"),
    ("POST", "/v1/uploads", _raw('{"name": "a\\ud800", "size": 1}'), "body"),
    ("POST", "/v1/uploads", _raw('{"name": "a\\u0000b", "size": 1}'), "body.name"),
    (
        "POST",
        "/v1/uploads",
        _raw('{"files": [{"name": "a", "size": 1, "mtime": NaN}]}'),
        "body.files.0.mtime",
    ),
    ("POST", "/v1/uploads", _raw(DEEP), "body"),
    ("POST", "/v1/gc", _raw(f'{{"grace_s": {BIG}}}'), "body.grace_s"),
    ("POST", "/v1/gc", _raw('{"grace_s": NaN}'), "body.grace_s"),
    ("POST", "/v1/repair", _raw('{"verify": "yes"}'), "body.verify"),
    ("POST", "/v1/files/manifests", _raw('{"names": ["a\\u0000"]}'), "body.names.0"),
    ("POST", "/v1/drain", _raw('{"nodes": ["../etc"]}'), "body.nodes.0"),
    ("GET", f"/v1/files/manifest?name=a&version={BIG}", {}, "query.version"),
    ("GET", "/v1/files/where?name=a&version=-1", {}, "query.version"),
    ("DELETE", f"/v1/files?name=a&version={BIG}", {}, "query.version"),
    ("GET", "/v1/files/manifest?name=%00", {}, "query.name"),
    ("GET", "/v1/files/manifest?name=" + "a" * 4097, {}, "query.name"),
    ("GET", "/v1/fsck?verify=maybe", {}, "query.verify"),
]


@pytest.mark.parametrize(("method", "path", "kw", "field"), CASES, ids=lambda v: str(v)[:40])
async def test_hostile_requests_are_refused_naming_the_field(
    make_cluster: ClusterFactory,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    kw: dict[str, Any],
    field: str,
) -> None:
    cluster = await make_cluster(2, factor=2)
    caplog.set_level(logging.INFO)
    kw = dict(kw)
    headers = kw.pop("headers_extra", {})
    resp = await cluster.manager.request(
        method, path, headers={"Authorization": "Bearer manager-test-token", **headers}, **kw
    )
    problem = await resp.json(content_type=None)
    assert resp.status == 400, problem
    assert problem["code"] == "bad_request"
    assert problem["detail"].startswith(field), problem["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # Nothing was placed or recorded.
    assert (await cluster.api.stats()).versions == 0
    assert [n.in_flight_bytes for n in (await cluster.api.nodes()).nodes] == [0, 0]


async def test_a_drain_of_unknown_nodes_starts_nothing(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(2, factor=2)
    status, problem = await cluster.call("POST", "/v1/drain", json={"nodes": ["node-0", "ghost"]})
    assert status == 404 and "ghost" in problem["detail"] and "node-0" not in problem["detail"]
    assert (await cluster.api.drain_status()).nodes == {}
