"""ChunkStore's file layout on a real directory (chunks above ``pack.max_chunk_bytes``, and
stores written before packs): layout, durability steps, verification, accounting. Packed chunks:
test_storage_node_packs.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from cofre.config import PackConfig
from cofre.errors import InsufficientStorage, IntegrityError, NotFound
from cofre.models import ChunkHash
from cofre.storage_node.store import TEMP_PREFIX, ChunkStore, StoreInUse


def chunk(seed: bytes, size: int = 4096) -> tuple[ChunkHash, bytes]:
    data = (seed * (size // len(seed) + 1))[:size]
    return ChunkHash(hashlib.sha256(data).hexdigest()), data


# Every chunk a file.
FILES = PackConfig(max_chunk_bytes=0)


async def opened(root: Path, **kw: int) -> ChunkStore:
    store = ChunkStore(root, packs=FILES, **kw)
    await store.open()
    return store


async def test_put_lays_out_chunks_by_hash_prefix_and_leaves_no_temp(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"layout")
    assert await store.put(h, data) is True
    path = tmp_path / "chunks" / h[:2] / h[2:4] / h
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [h]
    assert await store.get(h) == data
    assert await store.has(h)


async def test_put_refuses_bytes_that_do_not_match_the_hash(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, _ = chunk(b"right")
    with pytest.raises(IntegrityError):
        await store.put(h, b"wrong bytes")
    assert not await store.has(h)
    assert [p for p in (tmp_path / "chunks").rglob("*") if p.is_file()] == []
    assert store.chunk_count == 0 and store.stored_bytes == 0


async def test_second_put_is_a_dedup_hit_and_touches(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"dedup")
    await store.put(h, data)
    path = store.path_of(h)
    os.utime(path, (1_000_000, 1_000_000))
    assert await store.put(h, data) is False
    assert path.stat().st_mtime > 1_000_000
    assert store.chunk_count == 1 and store.stored_bytes == len(data)


async def test_corrupt_file_is_reported_quarantined_and_repairable(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"rot")
    await store.put(h, data)
    store.path_of(h).write_bytes(b"X" + data[1:])  # same length, flipped byte
    with pytest.raises(IntegrityError):
        await store.get(h)
    assert not store.path_of(h).exists()
    assert [p.name.split(".")[0] for p in (tmp_path / "quarantine").iterdir()] == [h]
    assert store.chunk_count == 0 and store.stored_bytes == 0
    checked = await store.check([h], verify=True)
    assert checked.corrupt == [h] and checked.present == [] and checked.missing == []
    # A re-put repairs it.
    assert await store.put(h, data) is True
    assert await store.get(h) == data
    assert (await store.check([h], verify=True)).present == [h]


async def test_check_verify_finds_rot_that_a_plain_check_misses(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"silent")
    await store.put(h, data)
    store.path_of(h).write_bytes(data[::-1])
    assert (await store.check([h])).present == [h]
    assert (await store.check([h], verify=True)).corrupt == [h]


async def test_truncated_file_is_replaced_by_a_put(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"trunc")
    await store.put(h, data)
    store.path_of(h).write_bytes(data[:10])
    assert await store.put(h, data) is True
    assert store.path_of(h).read_bytes() == data


async def test_concurrent_puts_of_one_chunk_store_it_once(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"race", 256 * 1024)
    created = await asyncio.gather(*(store.put(h, data) for _ in range(8)))
    assert created.count(True) == 1
    assert store.chunk_count == 1 and store.stored_bytes == len(data)
    assert [p.name for p in store.path_of(h).parent.iterdir()] == [h]
    assert await store.get(h) == data


async def test_reopen_removes_stale_temp_files_and_counts_chunks(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    stored = [chunk(bytes([i]) * 3, 1000 + i) for i in range(5)]
    for h, data in stored:
        await store.put(h, data)
    leaf = store.path_of(stored[0][0]).parent
    stale = leaf / f"{TEMP_PREFIX}{stored[0][0]}-deadbeef"
    stale.write_bytes(b"half a chunk")
    store.close()
    reopened = await opened(tmp_path)
    assert not stale.exists()
    assert reopened.chunk_count == 5
    assert reopened.stored_bytes == sum(len(d) for _, d in stored)


async def test_quarantined_chunk_stays_corrupt_across_restart(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h, data = chunk(b"restart-rot")
    await store.put(h, data)
    store.path_of(h).write_bytes(data[::-1])
    with pytest.raises(IntegrityError):
        await store.get(h)
    store.close()
    reopened = await opened(tmp_path)
    assert (await reopened.check([h])).corrupt == [h]
    with pytest.raises(IntegrityError):
        await reopened.get(h)


async def test_delete_returns_freed_bytes_and_updates_stats(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    h1, d1 = chunk(b"one", 3000)
    h2, d2 = chunk(b"two", 5000)
    await store.put(h1, d1)
    await store.put(h2, d2)
    assert store.stored_bytes == 8000 and store.chunk_count == 2
    assert await store.delete(h1) == 3000
    assert await store.delete(h1) == 0
    assert store.stored_bytes == 5000 and store.chunk_count == 1
    with pytest.raises(NotFound):
        await store.get(h1)


async def test_inventory_before_filters_by_last_write_or_touch(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    old_h, old_d = chunk(b"old")
    new_h, new_d = chunk(b"new")
    await store.put(old_h, old_d)
    await store.put(new_h, new_d)
    os.utime(store.path_of(old_h), (1_000_000, 1_000_000))
    cutoff = time.time() - 3600
    assert [e.hash for e in await store.inventory(before=cutoff)] == [old_h]
    assert {e.hash for e in await store.inventory()} == {old_h, new_h}
    await store.touch(old_h)
    assert await store.inventory(before=cutoff) == []


async def test_put_refused_when_the_reserve_would_be_eaten(tmp_path: Path) -> None:
    store = await opened(tmp_path, reserve_bytes=2**62)
    h, data = chunk(b"full")
    with pytest.raises(InsufficientStorage):
        await store.put(h, data)
    assert not await store.has(h)


async def test_stats_reports_free_bytes(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    stats = await store.stats()
    assert stats.free_bytes > 0 and stats.chunk_count == 0


async def test_a_data_dir_serves_one_store_at_a_time(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    with pytest.raises(StoreInUse):
        await opened(tmp_path)
    store.close()
    (await opened(tmp_path)).close()


def test_path_of_refuses_anything_but_a_hash(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    with pytest.raises(ValueError):
        store.path_of(ChunkHash("../../etc/passwd"))


async def test_a_big_batch_syncs_the_filesystem_after_its_writes_then_after_its_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cofre import durable
    from cofre.storage_node import store as store_module

    assert durable.have_syncfs()  # Linux with glibc: the batch path below is the one taken
    store = await opened(tmp_path)
    items = [chunk(f"batch{i}".encode(), 512) for i in range(store_module.SYNCFS_MIN_BATCH)]
    seen: list[tuple[int, int]] = []

    def recording_sync(path: Path) -> None:
        names = [p.name for p in (tmp_path / "chunks").rglob("*") if p.is_file()]
        temps = sum(1 for n in names if n.startswith(TEMP_PREFIX))
        seen.append((temps, len(names) - temps))
        durable.sync_filesystem(path)

    monkeypatch.setattr(store_module, "sync_filesystem", recording_sync)
    assert await store.put_many(items) == [True] * len(items)
    n = len(items)
    # First every temp file is written and synced with nothing renamed; then the renames.
    assert seen == [(n, 0), (0, n)]
    for h, data in items:
        assert await store.get(h) == data

    seen.clear()
    small = [chunk(f"small{i}".encode(), 512) for i in range(store_module.SYNCFS_MIN_BATCH - 1)]
    assert await store.put_many(small) == [True] * len(small)
    assert seen == []  # a small batch fsyncs each file and directory instead


def test_sync_filesystem_refuses_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    from cofre.durable import sync_filesystem

    sync_filesystem(tmp_path)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        sync_filesystem(tmp_path / "f")
