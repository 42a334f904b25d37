"""GET /v1/manifests: the chunks whose bytes start like a manifest, through the node's app."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cofre.models import ChunkRef, Manifest
from cofre.storage_node import create_app


async def test_manifests_lists_only_manifest_chunks(aiohttp_client, kit, data_dir: Path) -> None:
    client = await aiohttp_client(create_app(kit.config(data_dir, "node-0")))
    data_hash, data = kit.chunk("file contents", 3000)
    manifest = Manifest(
        name="docs/a.txt",
        size=len(data),
        mode=0o644,
        mtime=1.0,
        created=2.0,
        chunks=(ChunkRef(data_hash, len(data)),),
    )
    empty = Manifest(name="empty", size=0, mode=0o644, mtime=1.0, created=3.0, chunks=())
    # Look-alikes that are not manifests: JSON with a space, a prefix cut short, other JSON.
    decoys = [
        b'{"chunks": []}',
        b'{"chunks"',
        b"{}",
        b'{"format":"cofre-manifest-1"}',
        b'{"cofre_snapshot":2,"id":"x"}',
        b'{"cofre_snapshot":1',
    ]
    # A snapshot root begins with its own prefix and is listed as one.
    root = b'{"cofre_snapshot":1,"id":"' + b"ab" * 16 + b'"}'
    blobs = [data, manifest.encode(), empty.encode(), root, *decoys]
    for blob in blobs:
        h = hashlib.sha256(blob).hexdigest()
        resp = await client.put(f"/v1/chunks/{h}", data=blob, headers=kit.write_headers("node-0"))
        assert resp.status == 201, await resp.text()

    resp = await client.get("/v1/manifests", headers=kit.auth)
    assert resp.status == 200
    listed = (await resp.json())["manifests"]
    assert sorted(listed, key=lambda e: e["hash"]) == sorted(
        [
            {"hash": manifest.hash, "length": len(manifest.encode()), "kind": "manifest"},
            {"hash": empty.hash, "length": len(empty.encode()), "kind": "manifest"},
            {"hash": hashlib.sha256(root).hexdigest(), "length": len(root), "kind": "snapshot"},
        ],
        key=lambda e: e["hash"],
    )

    assert (await client.get("/v1/manifests")).status == 401


async def test_manifests_of_an_empty_node(aiohttp_client, kit, data_dir: Path) -> None:
    client = await aiohttp_client(create_app(kit.config(data_dir, "node-0")))
    resp = await client.get("/v1/manifests", headers=kit.auth)
    assert resp.status == 200 and (await resp.json()) == {"manifests": []}
