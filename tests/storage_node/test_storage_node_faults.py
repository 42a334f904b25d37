"""A node's volume failing under it: removed, wiped, full; and copies of the wrong size."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from cofre.config import PackConfig
from cofre.errors import StoreUnavailable
from cofre.storage_node import create_app
from cofre.storage_node.store import ChunkStore

from .test_storage_node_relay import PRIMARY, R1, register, send

STORE_LOG = "cofre.storage_node.store"
# Every chunk a file.
FILES = PackConfig(max_chunk_bytes=0)


async def get(server, path: str, kit, **kw):
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(path), headers=kit.auth, **kw) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def put(server, h: str, data: bytes, kit, node_id: str = "node-0"):
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            server.make_url(f"/v1/chunks/{h}"), data=data, headers=kit.write_headers(node_id)
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def post(server, path: str, kit, body):
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url(path), json=body, headers=kit.auth) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def store_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == STORE_LOG and r.levelno >= logging.WARNING
    ]


# -- a vanished store -------------------------------------------------------------------------


async def test_removed_data_dir_is_not_ready_with_its_reason_then_recovers(
    start_node, kit, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    server, _ = await start_node("node-0")
    h, data = kit.chunk("before")
    assert (await put(server, h, data, kit))[0] == 201
    data_dir = tmp_path / "node-0"
    shutil.rmtree(data_dir)

    for _ in range(5):
        status, health = await get(server, "/readyz", kit)
        assert status == 503 and not health["ok"]
        assert str(data_dir) in health["detail"] and "missing" in health["detail"]
        status, problem = await get(server, "/v1/stats", kit)
        assert status == 503, problem
        assert problem["code"] == "store_unavailable"
        assert str(data_dir) in problem["detail"]
    # A write is refused with the same reason, not a traceback.
    status, problem = await put(server, *kit.chunk("during"), kit)
    assert status == 503 and problem["code"] == "store_unavailable"
    status, problem = await post(server, "/v1/chunks/check", kit, {"hashes": [h]})
    assert status == 503 and problem["code"] == "store_unavailable"

    warned = store_warnings(caplog)
    assert len(warned) == 1 and "chunk store unavailable" in warned[0], warned
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    data_dir.mkdir()  # the directory is back, empty: a wiped store is an empty store
    status, health = await get(server, "/readyz", kit)
    assert status == 200 and health["ok"], health
    status, stats = await get(server, "/v1/stats", kit)
    assert status == 200 and stats["chunk_count"] == 0 and stats["stored_bytes"] == 0
    assert (data_dir / "chunks").is_dir() and (data_dir / "quarantine").is_dir()
    assert (await put(server, h, data, kit))[0] == 201
    assert len(store_warnings(caplog)) == 1


async def test_wiped_store_reopens_empty_with_one_warning(
    start_node, kit, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    server, _ = await start_node("node-0")
    h, data = kit.chunk("wiped")
    assert (await put(server, h, data, kit))[0] == 201
    data_dir = tmp_path / "node-0"
    for child in data_dir.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()

    for _ in range(3):
        status, stats = await get(server, "/v1/stats", kit)
        assert status == 200 and stats["chunk_count"] == 0, stats
    status, found = await post(server, "/v1/chunks/check", kit, {"hashes": [h]})
    assert status == 200 and found["missing"] == [h]
    assert (await put(server, h, data, kit))[0] == 201
    warned = store_warnings(caplog)
    assert len(warned) == 1 and "reopened" in warned[0], warned


async def test_store_refuses_work_while_its_directory_is_gone(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "d")
    await store.open()
    try:
        shutil.rmtree(tmp_path / "d")
        assert await store.health() is not None
        assert not await store.writable()
        for op in (store.stats(), store.inventory(), store.manifests(), store.delete_many([])):
            with pytest.raises(StoreUnavailable):
                await op
    finally:
        store.close()


# -- a copy of the wrong size -----------------------------------------------------------------


async def test_check_reports_a_copy_of_the_wrong_size_corrupt(tmp_path: Path, kit) -> None:
    # Only a file can have the wrong size: a packed record's length is in its header.
    store = ChunkStore(tmp_path / "d", packs=FILES)
    await store.open()
    try:
        (a, da), (b, db), (c, dc) = kit.chunk("a"), kit.chunk("b"), kit.chunk("c")
        for h, data in ((a, da), (b, db), (c, dc)):
            await store.put(h, data)
        os.truncate(store.path_of(a), 0)
        os.truncate(store.path_of(b), len(db) // 2)
        # Without lengths: an empty copy of a non-empty chunk is corrupt; a short one is not
        # known to be.
        found = await store.check([a, b, c])
        assert found.corrupt == [a] and found.present == [b, c]
        # With the lengths the manager knows, any wrong size is.
        found = await store.check([b, c], lengths=[len(db), len(dc)])
        assert found.corrupt == [b] and found.present == [c]
        # Quarantined: reported corrupt from now on, and a good copy can be stored again.
        assert not store.path_of(a).exists() and not store.path_of(b).exists()
        assert len(list(store.quarantine_dir.iterdir())) == 2
        assert (await store.check([a, b])).corrupt == [a, b]
        assert await store.put(b, db) is True
        assert (await store.check([b], lengths=[len(db)])).present == [b]
        # The empty chunk is the one chunk whose copy is empty.
        empty, nothing = kit.chunk("", 0)
        await store.put(empty, nothing)
        assert (await store.check([empty])).present == [empty]
    finally:
        store.close()


async def test_check_request_lengths_are_validated(start_node, kit) -> None:
    server, _ = await start_node("node-0")
    h, data = kit.chunk("sized")
    assert (await put(server, h, data, kit))[0] == 201
    status, problem = await post(
        server, "/v1/chunks/check", kit, {"hashes": [h], "lengths": [1, 2]}
    )
    assert status == 400 and "lengths" in problem["detail"], problem
    status, found = await post(
        server, "/v1/chunks/check", kit, {"hashes": [h], "lengths": [len(data) + 1]}
    )
    assert status == 200 and found["corrupt"] == [h], found


# -- a full volume ----------------------------------------------------------------------------


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 4 MiB with 12 inodes: the node's layout takes 8 (with the pack index and its
    journal files), one chunk file 3 (two fan-out directories and its file), so a second chunk
    file runs out of inodes (ENOSPC) at its file."""
    mount = tmp_path / f"vol-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=12", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a real ENOSPC (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def different_prefix(kit, first: str):
    """A chunk whose first fan-out directory differs from ``first``'s."""
    for i in range(1000):
        h, data = kit.chunk(f"other-{i}")
        if h[:2] != first[:2]:
            return h, data
    raise AssertionError("no chunk with another prefix")


async def test_write_out_of_space_is_507_naming_the_node_and_leaves_nothing(
    aiohttp_server, kit, small_volume: Path
) -> None:
    app = create_app(kit.config(small_volume, "node-full", pack=FILES))
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    h1, d1 = kit.chunk("fits")
    assert (await put(server, h1, d1, kit, "node-full"))[0] == 201
    h2, d2 = different_prefix(kit, h1)
    status, problem = await put(server, h2, d2, kit, "node-full")
    assert status == 507, problem
    assert problem["code"] == "insufficient_storage"
    assert "node-full" in problem["detail"] and problem["node_id"] == "node-full"
    # No partial chunk, no temp file; what it held is still served.
    names = [p.name for p in kit.files_under(small_volume)]
    assert h2 not in names and not [n for n in names if n.startswith(".tmp-")], names
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(f"/v1/chunks/{h1}"), headers=kit.auth) as resp,
    ):
        assert resp.status == 200 and await resp.read() == d1
    status, health = await get(server, "/readyz", kit)
    assert status == 200, health


async def test_relay_to_a_full_replica_says_a_copy_node_is_out_of_space(start_node, kit) -> None:
    primary, _ = await start_node(PRIMARY)
    replica, _ = await start_node(R1, reserve_bytes=2**62)
    replica_url = str(replica.make_url(""))
    assert (await register(primary, kit, [(R1, replica_url)]))[0] == 201
    h, data = kit.chunk("relayed")
    status, problem = await send(primary, kit, h, data)
    assert status == 507, problem
    assert problem["code"] == "insufficient_storage"
    assert "a copy node is out of space" in problem["detail"]
    # The client never learns where its copies live.
    assert R1 not in str(problem) and replica_url.rstrip("/") not in str(problem)
    assert "node_id" not in problem


async def test_an_unmounted_volume_is_not_written_beneath_until_mounted_again(
    small_volume: Path,
) -> None:
    store = ChunkStore(small_volume)
    await store.open()
    try:
        # Lazily: the store's lock file keeps the volume busy, as a node's open files would.
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(small_volume)], check=True)
        fault = await store.health()
        assert fault is not None and "no longer a mounted volume" in fault
        assert not await store.writable()
        # The empty mount point is not taken for a wiped store: nothing is created on it.
        assert await asyncio.to_thread(os.listdir, small_volume) == []
        remount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small_volume)]
        await asyncio.to_thread(subprocess.run, remount, check=True)
        assert await store.health() is None
        assert await store.writable()
        assert (small_volume / "chunks").is_dir()
    finally:
        store.close()
