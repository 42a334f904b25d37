"""Packed chunks on a real directory: append, read, verify, index rebuild, torn tails, deletes,
compaction racing reads and writes, and a store of the file layout read in place."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from pathlib import Path

import pytest

from cofre.config import PackConfig
from cofre.errors import IntegrityError, NotFound
from cofre.models import ChunkHash
from cofre.storage_node.packs import HEADER_SIZE, INDEX_FILE, scan_pack
from cofre.storage_node.store import ChunkStore, stored_chunks

from .conftest import Kit


def chunk(seed: str, size: int = 4096) -> tuple[ChunkHash, bytes]:
    data = random.Random(seed).randbytes(size)
    return ChunkHash(hashlib.sha256(data).hexdigest()), data


async def opened(root: Path, **kw: object) -> ChunkStore:
    store = ChunkStore(root, packs=PackConfig(**kw))  # type: ignore[arg-type]
    await store.open()
    return store


def pack_files(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


async def test_small_chunks_share_a_pack_and_read_back_verified(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    items = [chunk(f"c{i}") for i in range(50)]
    assert await store.put_many(items) == [True] * 50
    assert await store.put(*chunk("one more")) is True
    assert len(pack_files(tmp_path)) == 1
    assert not [p for p in (tmp_path / "chunks").rglob("*") if p.is_file()]
    for h, data in items:
        assert await store.get(h) == data
    assert store.chunk_count == 51 and store.stored_bytes == 51 * 4096
    # The pack holds exactly the records, each with its header.
    assert pack_files(tmp_path)[0].stat().st_size == 51 * (HEADER_SIZE + 4096)
    # A re-put is a dedup hit: nothing appended.
    assert await store.put_many(items[:3]) == [False] * 3
    assert pack_files(tmp_path)[0].stat().st_size == 51 * (HEADER_SIZE + 4096)
    # Chunks above the limit stay files.
    big_h, big = chunk("big", PackConfig().max_chunk_bytes + 1)
    assert await store.put(big_h, big) is True
    assert store.path_of(big_h).read_bytes() == big
    assert await store.get(big_h) == big


async def test_a_flipped_byte_in_a_pack_is_caught_on_read_and_repaired_by_a_put(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    items = [chunk(f"r{i}") for i in range(3)]
    await store.put_many(items)
    rotten, data = items[1]
    Kit.flip_byte(tmp_path, rotten, at=100)
    # A plain check trusts the index; verify re-reads and re-hashes.
    assert (await store.check([rotten])).present == [rotten]
    with pytest.raises(IntegrityError):
        await store.get(rotten)
    # Kept aside, dropped from the index, reported corrupt (also after a restart).
    [aside] = list((tmp_path / "quarantine").iterdir())
    assert aside.name.startswith(rotten) and aside.read_bytes() != data
    assert store.chunk_count == 2
    assert (await store.check([rotten], verify=True)).corrupt == [rotten]
    assert await store.get(items[0][0]) == items[0][1]  # the neighbours are fine
    assert await store.get(items[2][0]) == items[2][1]
    store.close()
    store = await opened(tmp_path)
    assert (await store.check([rotten])).corrupt == [rotten]
    assert store.chunk_count == 2
    assert await store.put(rotten, data) is True
    assert await store.get(rotten) == data
    assert (await store.check([rotten], verify=True)).present == [rotten]


async def test_the_index_is_rebuilt_from_the_packs_alone_deletes_included(tmp_path: Path) -> None:
    store = await opened(tmp_path, target_bytes=64 * 1024)  # several packs
    items = [chunk(f"i{i}") for i in range(40)]
    await store.put_many(items[:20])
    await store.put_many(items[20:])
    deleted = [h for h, _ in items[5:15]]
    assert (await store.delete_many(deleted)) == (10, 10 * 4096)
    kit = Kit()
    kit.age(store, items[0][0], 1_000_000)
    store.close()
    assert len(pack_files(tmp_path)) > 2
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "packs" / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)

    store = await opened(tmp_path, target_bytes=64 * 1024)
    assert store.chunk_count == 30 and store.stored_bytes == 30 * 4096
    for h, data in items:
        if h in deleted:
            with pytest.raises(NotFound):
                await store.get(h)
        else:
            assert await store.get(h) == data
    # A rebuilt chunk counts as used now: GC spares what it cannot date.
    assert await store.inventory(before=1_000_001) == []


async def test_an_unreadable_index_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    items = [chunk(f"u{i}") for i in range(5)]
    await store.put_many(items)
    store.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / "packs" / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)
    (tmp_path / "packs" / INDEX_FILE).write_bytes(b"not a database" * 100)
    store = await opened(tmp_path)
    assert store.chunk_count == 5
    assert [await store.get(h) for h, _ in items] == [d for _, d in items]
    assert list((tmp_path / "packs").glob(f"{INDEX_FILE}.broken-*"))


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE + 100, HEADER_SIZE + 4095])
async def test_a_torn_tail_is_cut_at_open_and_nothing_before_it_is_lost(
    tmp_path: Path, cut: int
) -> None:
    store = await opened(tmp_path)
    kept = [chunk(f"t{i}") for i in range(10)]
    await store.put_many(kept)
    torn_h, torn = chunk("torn")
    await store.put(torn_h, torn)
    store.close()
    [pack] = pack_files(tmp_path)
    whole = pack.stat().st_size
    # As a kill mid-append leaves it: the last record cut short.
    good_end = whole - HEADER_SIZE - len(torn)
    os.truncate(pack, good_end + cut)
    # ... and the index does not know the record yet (the kill came before the commit).
    import sqlite3

    db = sqlite3.connect(tmp_path / "packs" / INDEX_FILE)
    db.execute("DELETE FROM chunks WHERE hash = ?", (torn_h,))
    db.execute("UPDATE packs SET indexed_upto = ?", (good_end,))
    db.commit()
    db.close()

    store = await opened(tmp_path)
    assert pack.stat().st_size == good_end
    assert store.chunk_count == 10
    for h, data in kept:
        assert await store.get(h) == data
    with pytest.raises(NotFound):
        await store.get(torn_h)
    # Appends go on after the cut; the pack scans clean.
    assert await store.put(torn_h, torn) is True
    assert await store.get(torn_h) == torn
    scan = scan_pack(pack)
    assert scan.good_end == scan.size and len(scan.records) == 11


async def test_a_rotten_record_mid_pack_is_skipped_by_a_rebuild_not_cut(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    items = [chunk(f"m{i}") for i in range(5)]
    await store.put_many(items)
    store.close()
    Kit.flip_byte(tmp_path, items[2][0], at=7)
    (tmp_path / "packs" / INDEX_FILE).unlink()
    size = pack_files(tmp_path)[0].stat().st_size
    store = await opened(tmp_path)
    assert pack_files(tmp_path)[0].stat().st_size == size  # nothing cut
    assert store.chunk_count == 4
    assert await store.get(items[4][0]) == items[4][1]


async def test_compaction_rewrites_a_pack_with_too_much_garbage(tmp_path: Path) -> None:
    store = await opened(tmp_path, target_bytes=100 * 1024, compact_garbage_fraction=0.3)
    items = [chunk(f"g{i}") for i in range(60)]
    for i in range(0, 60, 10):
        await store.put_many(items[i : i + 10])
    first = pack_files(tmp_path)[0]
    in_first = [h for h, _ in items if stored_chunks(tmp_path)[h].path == first]
    # 25% garbage: under the fraction, left alone.
    await store.delete_many(in_first[: len(in_first) // 4])
    assert await store.compact() == 0
    # Over it: rewritten, its live chunks moved, the file gone.
    await store.delete_many(in_first[: len(in_first) // 2])
    before = store.pack_stats()
    assert before.garbage_bytes > 0
    assert await store.compact() == 1
    assert not first.exists()
    after = store.pack_stats()
    assert after.pack_bytes < before.pack_bytes
    assert store.packs.compacted_packs == 1 and store.packs.reclaimed_bytes > 0
    gone = set(in_first[: len(in_first) // 2])
    for h, data in items:
        if h in gone:
            assert not await store.has(h)
        else:
            assert await store.get(h) == data
    # Deletes stay deleted through a rebuild after compaction (tombstones kept while needed).
    store.close()
    (tmp_path / "packs" / INDEX_FILE).unlink()
    store = await opened(tmp_path, target_bytes=100 * 1024)
    assert store.chunk_count == 60 - len(gone)
    assert not [h for h in gone if await store.has(h)]


async def test_compaction_racing_reads_writes_and_deletes_loses_nothing(tmp_path: Path) -> None:
    store = await opened(
        tmp_path, target_bytes=64 * 1024, compact_garbage_fraction=0.05, compact_bytes_per_s=0
    )
    items = [chunk(f"x{i}", 2048) for i in range(400)]
    for i in range(0, 400, 20):
        await store.put_many(items[i : i + 20])
    doomed = {h for h, _ in items[::3]}
    live = [(h, d) for h, d in items if h not in doomed]
    await store.delete_many(sorted(doomed))
    new = [chunk(f"n{i}", 2048) for i in range(200)]
    failures: list[str] = []
    stop = asyncio.Event()

    async def reader() -> None:
        rng = random.Random(1)
        while not stop.is_set():
            h, data = rng.choice(live)
            try:
                if await store.get(h) != data:
                    failures.append(f"wrong bytes for {h}")
            except Exception as exc:  # any failure of an acknowledged chunk counts
                failures.append(f"{h}: {exc!r}")

    async def writer() -> None:
        for i in range(0, 200, 10):
            assert await store.put_many(new[i : i + 10]) == [True] * 10

    async def compactor() -> int:
        done = 0
        while True:
            n = await store.compact()
            if n == 0:
                return done
            done += n

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    compacted, _ = await asyncio.gather(compactor(), writer())
    stop.set()
    await asyncio.gather(*readers)
    assert compacted > 0
    assert failures == []
    for h, data in live + new:
        assert await store.get(h) == data
    assert not [h for h in doomed if await store.has(h)]
    assert store.chunk_count == len(live) + len(new)
    assert store.stored_bytes == 2048 * (len(live) + len(new))
    # What the index says matches a rebuild from the packs.
    store.close()
    (tmp_path / "packs" / INDEX_FILE).unlink()
    store = await opened(tmp_path, target_bytes=64 * 1024)
    assert store.chunk_count == len(live) + len(new)
    assert not [h for h in doomed if await store.has(h)]


async def test_compaction_finds_rot_in_what_it_moves(tmp_path: Path) -> None:
    store = await opened(tmp_path, target_bytes=32 * 1024, compact_garbage_fraction=0.1)
    items = [chunk(f"z{i}") for i in range(16)]
    await store.put_many(items[:8])
    await store.put_many(items[8:])
    first = pack_files(tmp_path)[0]
    in_first = [h for h, _ in items if stored_chunks(tmp_path)[h].path == first]
    await store.delete_many(in_first[:2])
    Kit.flip_byte(tmp_path, in_first[3])
    assert await store.compact() >= 1
    assert (await store.check([in_first[3]])).corrupt == [in_first[3]]
    assert await store.get(in_first[4]) == dict(items)[in_first[4]]


async def test_a_store_of_the_file_layout_is_read_in_place(tmp_path: Path) -> None:
    # Written as before packs: every chunk a file.
    old = await opened(tmp_path, max_chunk_bytes=0)
    items = [chunk(f"o{i}") for i in range(6)]
    await old.put_many(items)
    assert not pack_files(tmp_path)
    old.close()

    store = await opened(tmp_path)
    assert store.chunk_count == 6 and store.stored_bytes == 6 * 4096
    for h, data in items:
        assert await store.get(h) == data
    assert {e.hash for e in await store.inventory()} == {h for h, _ in items}
    # A put of a chunk it holds as a file is a dedup hit, not a second copy.
    assert await store.put(*items[0]) is False
    assert not pack_files(tmp_path)
    # New small chunks go to a pack; old ones are deleted and verified where they are.
    new_h, new = chunk("new")
    assert await store.put(new_h, new) is True and pack_files(tmp_path)
    assert await store.delete(items[1][0]) == 4096
    Kit.flip_byte(tmp_path, items[2][0])
    assert (await store.check([h for h, _ in items], verify=True)).corrupt == [items[2][0]]
    assert store.chunk_count == 5 and store.stored_bytes == 5 * 4096


async def test_a_node_app_packs_deletes_compacts_and_reports_it(start_node, kit) -> None:
    """Through the node's API: a framed batch lands in one pack, GC's deletes make garbage, the
    compaction loop gives the space back, and /v1/stats and /metrics stay right throughout."""
    from aiohttp import ClientSession

    from cofre.protocol.framing import CONTENT_TYPE, encode_frames
    from cofre.storage_node.app import COMPACT_LOOP

    from .test_storage_node_metrics import scrape

    server, app = await start_node("node-0", pack=PackConfig(target_bytes=64 * 1024))
    items = [chunk(f"app{i}", 4000) for i in range(40)]
    async with ClientSession() as http:
        headers = {**kit.write_headers("node-0"), "Content-Type": CONTENT_TYPE}
        for i in range(0, 40, 20):
            async with http.put(
                server.make_url("/v1/chunks"),
                data=encode_frames(items[i : i + 20]),
                headers=headers,
            ) as resp:
                assert resp.status == 201, await resp.text()
        doomed = [h for h, _ in items[:30]]
        async with http.post(
            server.make_url("/v1/chunks/delete"), json={"hashes": doomed}, headers=kit.auth
        ) as resp:
            assert await resp.json() == {"deleted": 30, "freed_bytes": 30 * 4000}
        before = await scrape(server, kit)
        assert before.value("cofre_node_stored_chunks") == 10
        assert before.value("cofre_node_stored_bytes") == 10 * 4000
        garbage = before.value("cofre_node_pack_garbage_bytes")
        assert garbage >= 30 * (4000 + HEADER_SIZE)

        await app[COMPACT_LOOP].run_once()

        after = await scrape(server, kit)
        assert after.value("cofre_node_compacted_packs_total") >= 1
        assert after.value("cofre_node_pack_garbage_bytes") < garbage
        assert after.value("cofre_node_pack_bytes") < before.value("cofre_node_pack_bytes")
        assert after.value("cofre_node_compaction_reclaimed_bytes_total") > 0
        async with http.get(server.make_url("/v1/stats"), headers=kit.auth) as resp:
            stats = await resp.json()
        assert stats["chunk_count"] == 10 and stats["stored_bytes"] == 10 * 4000
        for h, data in items[30:]:
            async with http.get(server.make_url(f"/v1/chunks/{h}"), headers=kit.auth) as resp:
                assert resp.status == 200 and await resp.read() == data


async def test_a_read_after_the_store_was_wiped_says_not_found_not_an_error(
    tmp_path: Path,
) -> None:
    import shutil

    store = await opened(tmp_path / "d")
    h, data = chunk("wiped")
    await store.put(h, data)
    for child in (tmp_path / "d").iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    with pytest.raises(NotFound):
        await store.get(h)
    assert store.chunk_count == 0
    assert await store.put(h, data) is True
    assert await store.get(h) == data


async def test_a_sealed_pack_with_appends_not_yet_indexed_is_not_compacted(
    tmp_path: Path,
) -> None:
    """A batch appended and synced but not yet indexed looks like garbage in its pack; the pack
    is left alone until the batch is indexed, or its chunks would point into a removed pack."""
    from cofre.storage_node.packs import KIND_CHUNK, record_header

    store = await opened(tmp_path, target_bytes=8 * 1024)
    packs = store.packs
    late_h, late = chunk("late", 12_000)
    pending, _ = packs._append([(record_header(KIND_CHUNK, late_h, late), late)])
    # The next batch finds the pack full: it is sealed, the batch goes to a new one.
    await store.put_many([chunk(f"s{i}") for i in range(4)])
    assert packs._active is not None and packs._active.id != pending.id
    assert packs.garbage_fraction(pending.id) > 0.3
    assert pending.id not in packs.compaction_candidates(0.3)
    assert packs.compact(pending.id, step_bytes=1 << 20, pace=lambda n: None, on_rot=print) == (
        0,
        0,
    )
    packs._release(pending)
    assert pending.id in packs.compaction_candidates(0.3)
