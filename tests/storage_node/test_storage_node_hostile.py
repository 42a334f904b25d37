"""Hostile requests to a node are 400 problems naming the field, never a 500 or a logged error;
a correctly signed ticket that would never expire is refused."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from cofre.limits import MAX_SESSION_TTL_S
from cofre.storage_node import create_app

from .conftest import Kit

H = "a" * 64
BIG = str(2**64)
DEEP = "[" * 100_000 + "]" * 100_000

CASES: list[tuple[str, str, str | None, str]] = [
    ("POST", "/v1/chunks/check", f'{{"hashes": ["{H}"], "verify": "no"}}', "body.verify"),
    ("POST", "/v1/chunks/check", '{"hashes": ["../../etc/passwd"]}', "body.hashes.0"),
    ("POST", "/v1/chunks/check", DEEP, "body"),
    ("POST", "/v1/chunks/delete", '{"hashes": [7]}', "body.hashes.0"),
    ("POST", "/v1/chunks/read", '{"hashes": ["\\ud800"]}', "body"),
    ("GET", "/v1/chunks?before=nan", None, "query.before"),
    ("GET", f"/v1/chunks?before={BIG}e999", None, "query.before"),
    ("GET", "/v1/chunks/..%2F..%2Fetc", None, "path.hash"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES, ids=lambda v: str(v)[:40])
async def test_hostile_requests_are_refused_naming_the_field(
    aiohttp_client: Any,
    tmp_path: Path,
    kit: Kit,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: str | None,
    field: str,
) -> None:
    client = await aiohttp_client(create_app(kit.config(tmp_path / "node")))
    caplog.set_level(logging.INFO)
    headers = {**kit.auth, "Content-Type": "application/json"}
    resp = await client.request(method, path, data=body, headers=headers)
    problem = await resp.json(content_type=None)
    assert resp.status == 400, problem
    assert problem["detail"].startswith(field), problem["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("expires", [float("nan"), float("inf")])
async def test_a_signed_ticket_that_never_expires_writes_nothing(
    aiohttp_client: Any, tmp_path: Path, kit: Kit, expires: float
) -> None:
    client = await aiohttp_client(create_app(kit.config(tmp_path / "node")))
    chunk_hash, data = kit.chunk("never")
    headers = kit.write_headers("node-0", expires=expires)
    resp = await client.put(f"/v1/chunks/{chunk_hash}", data=data, headers=headers)
    assert resp.status == 403
    assert "finite" in (await resp.json())["detail"]
    assert not [p for p in kit.files_under(tmp_path / "node") if p.name == chunk_hash]


async def test_a_relay_session_that_would_outlive_any_upload_is_refused(
    aiohttp_client: Any, tmp_path: Path, kit: Kit
) -> None:
    client = await aiohttp_client(create_app(kit.config(tmp_path / "node")))
    session = {
        "upload_id": "u-1",
        "replicas": [{"node_id": "node-1", "url": "http://127.0.0.1:9"}],
        "replica_ticket": "t.s",
    }
    for expires in (2.97e209, time.time() + MAX_SESSION_TTL_S + 60):
        resp = await client.post(
            "/v1/sessions", json={**session, "expires": expires}, headers=kit.auth
        )
        assert resp.status == 400
        assert (await resp.json())["detail"].startswith("body.expires")
    ok = {**session, "expires": time.time() + 600}
    assert (await client.post("/v1/sessions", json=ok, headers=kit.auth)).status == 201
