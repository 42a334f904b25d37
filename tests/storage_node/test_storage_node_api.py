"""One storage node through its app factory: chunk endpoints, auth, tickets, hostile input."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cofre.chunks import MAX_CHUNK_SIZE
from cofre.storage_node import create_app, keys
from cofre.storage_node.operations import api

from ..openapi_checks import SCHEMAS, check_document


async def client_for(aiohttp_client, kit, data_dir: Path, **kw):
    return await aiohttp_client(create_app(kit.config(data_dir, "node-0", **kw)))


async def refused_field(resp: Any) -> str:
    """The field a 400 problem names first (its detail starts with it)."""
    problem = await resp.json()
    assert resp.status == 400 and problem["code"] == "bad_request", problem
    field = problem["errors"][0]["loc"]
    assert problem["detail"].startswith(f"{field}: "), problem
    return str(field)


async def test_put_get_roundtrip_and_dedup(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    h, data = kit.chunk("roundtrip")
    resp = await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
    assert resp.status == 201 and (await resp.json()) == {"created": True}
    assert kit.stored(data_dir, h) == data
    resp = await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
    assert resp.status == 200 and (await resp.json()) == {"created": False}
    resp = await client.get(f"/v1/chunks/{h}", headers=kit.auth)
    assert resp.status == 200
    assert resp.content_type == "application/octet-stream"
    assert await resp.read() == data


async def test_put_with_wrong_bytes_is_422_and_stores_nothing(
    aiohttp_client, kit, data_dir: Path
) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    h, _ = kit.chunk("claimed")
    resp = await client.put(f"/v1/chunks/{h}", data=b"other", headers=kit.write_headers("node-0"))
    assert resp.status == 422
    assert (await resp.json())["code"] == "integrity"
    assert kit.files_under(data_dir / "chunks") == []


async def test_corrupt_on_disk_gives_422_and_check_verify_reports_it(
    aiohttp_client, kit, data_dir: Path
) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    h, data = kit.chunk("decay")
    await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
    kit.flip_byte(data_dir, h)
    body = {"hashes": [h], "verify": True, "touch": False}
    resp = await client.post("/v1/chunks/check", json=body, headers=kit.auth)
    assert (await resp.json()) == {"present": [], "missing": [], "corrupt": [h]}
    resp = await client.get(f"/v1/chunks/{h}", headers=kit.auth)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    # Re-sending the chunk repairs it.
    resp = await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
    assert resp.status == 201
    resp = await client.get(f"/v1/chunks/{h}", headers=kit.auth)
    assert await resp.read() == data


async def test_get_unknown_chunk_is_404(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    h, _ = kit.chunk("absent")
    resp = await client.get(f"/v1/chunks/{h}", headers=kit.auth)
    assert resp.status == 404 and (await resp.json())["code"] == "not_found"


async def test_writes_without_a_valid_ticket_for_this_node_are_403(
    aiohttp_client, kit, data_dir: Path
) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    h, data = kit.chunk("guarded")
    bad = {
        "missing": kit.auth,
        "wrong signature": {**kit.auth, "X-Cofre-Ticket": kit.ticket("node-0", token="other")},
        "expired": kit.write_headers("node-0", expires=time.time() - 5),
        "other node": kit.write_headers("node-1", "node-2"),
        "garbage": {**kit.auth, "X-Cofre-Ticket": "not-a-ticket"},
    }
    for case, headers in bad.items():
        resp = await client.put(f"/v1/chunks/{h}", data=data, headers=headers)
        assert resp.status == 403, case
        assert (await resp.json())["code"] == "forbidden", case
        pull = {"hash": h, "sources": ["http://127.0.0.1:1"]}
        resp = await client.post("/v1/chunks/pull", json=pull, headers=headers)
        assert resp.status == 403, case
    assert kit.files_under(data_dir / "chunks") == []


async def test_token_is_required_except_for_health_probes(
    aiohttp_client, kit, data_dir: Path
) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": kit.token}):
        resp = await client.get("/v1/stats", headers=headers)
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthorized"
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/v1/stats", headers=kit.auth)).status == 200


async def test_readyz_fails_when_the_store_is_not_writable(
    aiohttp_client, kit, data_dir: Path
) -> None:
    if os.geteuid() == 0:
        # root writes regardless of modes; simulate a closed store instead.
        app = create_app(kit.config(data_dir))
        client = await aiohttp_client(app)
        app[keys.STORE].close()
    else:
        client = await client_for(aiohttp_client, kit, data_dir)
        (data_dir / "chunks").chmod(0o500)
    try:
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await client.get("/healthz")).status == 200
    finally:
        (data_dir / "chunks").chmod(0o700)


async def test_check_sorts_and_touches(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    held, data = kit.chunk("held")
    absent, _ = kit.chunk("absent")
    await client.put(f"/v1/chunks/{held}", data=data, headers=kit.write_headers("node-0"))
    store = client.server.app[keys.STORE]
    kit.age(store, held, 1_000_000)
    body = {"hashes": [held, absent], "touch": True}
    resp = await client.post("/v1/chunks/check", json=body, headers=kit.auth)
    assert (await resp.json()) == {"present": [held], "missing": [absent], "corrupt": []}
    assert kit.last_used(store, held) > 1_000_000


async def test_inventory_before_and_delete_with_stats(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    old, old_data = kit.chunk("old", 3000)
    new, new_data = kit.chunk("new", 5000)
    for h, d in ((old, old_data), (new, new_data)):
        await client.put(f"/v1/chunks/{h}", data=d, headers=kit.write_headers("node-0"))
    kit.age(client.server.app[keys.STORE], old, 1_000_000)
    resp = await client.get("/v1/chunks", params={"before": "2000000"}, headers=kit.auth)
    assert (await resp.json())["chunks"] == [{"hash": old, "length": 3000, "mtime": 1_000_000.0}]
    resp = await client.get("/v1/chunks", headers=kit.auth)
    assert {c["hash"] for c in (await resp.json())["chunks"]} == {old, new}
    stats = await (await client.get("/v1/stats", headers=kit.auth)).json()
    assert stats["node_id"] == "node-0"
    assert stats["stored_bytes"] == 8000 and stats["chunk_count"] == 2
    assert stats["free_bytes"] > 0
    resp = await client.post("/v1/chunks/delete", json={"hashes": [old, old]}, headers=kit.auth)
    assert (await resp.json()) == {"deleted": 1, "freed_bytes": 3000}
    stats = await (await client.get("/v1/stats", headers=kit.auth)).json()
    assert stats["stored_bytes"] == 5000 and stats["chunk_count"] == 1
    assert (await client.get(f"/v1/chunks/{old}", headers=kit.auth)).status == 404


async def test_insufficient_storage_is_507(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir, reserve_bytes=2**62)
    h, data = kit.chunk("nospace")
    resp = await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
    assert resp.status == 507 and (await resp.json())["code"] == "insufficient_storage"


async def test_bad_hash_in_path_is_400(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    for bad in ("abc", "Z" * 64, "A" * 64, "0" * 65):
        resp = await client.get(f"/v1/chunks/{bad}", headers=kit.auth)
        assert await refused_field(resp) == "path.hash", bad
        resp = await client.put(f"/v1/chunks/{bad}", data=b"x", headers=kit.write_headers("node-0"))
        assert await refused_field(resp) == "path.hash", bad


async def test_path_traversal_in_hash_segment_touches_nothing(
    aiohttp_client, kit, tmp_path: Path
) -> None:
    data_dir = tmp_path / "deep" / "node-data"
    client = await client_for(aiohttp_client, kit, data_dir)
    before = kit.files_under(tmp_path)
    for segment in ("..%2F..%2Fetc", "..%2F..%2F..%2Fescape", "%2E%2E", "..", "x%00y"):
        resp = await client.get(f"/v1/chunks/{segment}", headers=kit.auth)
        assert resp.status in (400, 404), segment
        resp = await client.put(
            f"/v1/chunks/{segment}", data=b"payload", headers=kit.write_headers("node-0")
        )
        assert resp.status in (400, 404, 405), segment
    resp = await client.put(
        "/v1/chunks/..%2F..%2Fetc", data=b"payload", headers=kit.write_headers("node-0")
    )
    assert resp.status == 400
    assert kit.files_under(tmp_path) == before


async def test_oversized_chunk_body_is_413(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    h, _ = kit.chunk("huge")
    resp = await client.put(
        f"/v1/chunks/{h}", data=b"\0" * (MAX_CHUNK_SIZE + 1), headers=kit.write_headers("node-0")
    )
    assert resp.status == 413
    assert (await resp.json())["code"] == "payload_too_large"
    assert kit.files_under(data_dir / "chunks") == []


async def test_json_limits(aiohttp_client, kit, data_dir: Path) -> None:
    client = await client_for(aiohttp_client, kit, data_dir)
    too_many = {"hashes": ["0" * 64] * 100_001}
    resp = await client.post("/v1/chunks/check", json=too_many, headers=kit.auth)
    assert await refused_field(resp) == "body.hashes"
    resp = await client.post("/v1/chunks/delete", json=too_many, headers=kit.auth)
    assert await refused_field(resp) == "body.hashes"
    resp = await client.post(
        "/v1/chunks/check", data=b"[" + b" " * (9 * 1024 * 1024) + b"]", headers=kit.auth
    )
    assert resp.status == 413
    for body, field in (
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"hashes": "x"}', "body.hashes"),
        (b'{"hashes": ["../x"]}', "body.hashes.0"),
        (b'{"hashes": [], "verify": "yes"}', "body.verify"),
        (b'{"hashes": [], "verfy": true}', "body.verfy"),
    ):
        resp = await client.post("/v1/chunks/check", data=body, headers=kit.auth)
        assert await refused_field(resp) == field, body
    resp = await client.get("/v1/chunks", params={"before": "soon"}, headers=kit.auth)
    assert await refused_field(resp) == "query.before"


async def test_openapi_describes_every_path(aiohttp_client, kit, data_dir: Path) -> None:
    app = create_app(kit.config(data_dir))
    client = await aiohttp_client(app)
    resp = await client.get("/v1/openapi.json", headers=kit.auth)
    assert resp.status == 200
    doc = await resp.json()
    check_document(app, doc, api.operations)
    # Chunk bytes travel raw, the relay's session opening as JSON.
    put = doc["paths"]["/v1/chunks/{hash}"]["put"]["requestBody"]["content"]
    assert set(put) == {"application/octet-stream"}
    opened = doc["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]
    assert opened == {"application/json": {"schema": {"$ref": SCHEMAS + "OpenSession"}}}
