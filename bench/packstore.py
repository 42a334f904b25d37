"""The chunk store's two layouts side by side: write and read throughput of 4 KiB and 4 MiB
chunks, packed and a file each, on the disk under --dir.

    .venv/bin/python -m bench.packstore --dir /var/tmp/packbench

Writes go through ``ChunkStore.put_many`` in batches (as a framed upload batch or a relay
delivers them), several batches at once; reads through ``get`` (verified), several at once,
after the page cache was dropped when the process may (root), else from a cold-ish cache of
a fresh store object. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import time
from pathlib import Path

from cofre.config import PackConfig
from cofre.models import ChunkHash
from cofre.storage_node.store import ChunkStore

KIB = 1024
MIB = 1024 * KIB
# (chunk size, chunks, chunks per batch)
WORKLOADS = ((4 * KIB, 10_000, 256), (4 * MIB, 64, 4))
LAYOUTS = {"files": PackConfig(max_chunk_bytes=0), "packs": PackConfig(max_chunk_bytes=64 * MIB)}
STREAMS = 4


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def make_chunks(size: int, count: int) -> list[tuple[ChunkHash, bytes]]:
    base = random.Random(size).randbytes(size)
    out = []
    for i in range(count):
        data = i.to_bytes(8, "little") + base[8:]
        out.append((ChunkHash(hashlib.sha256(data).hexdigest()), data))
    return out


async def run_one(
    root: Path, layout: PackConfig, size: int, count: int, per_batch: int
) -> dict[str, float]:
    shutil.rmtree(root, ignore_errors=True)
    items = make_chunks(size, count)
    batches = [items[i : i + per_batch] for i in range(0, count, per_batch)]
    store = ChunkStore(root, packs=layout)
    await store.open()
    queue = list(batches)

    async def writer() -> None:
        while queue:
            await store.put_many(queue.pop())

    began = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(STREAMS)))
    write_s = time.perf_counter() - began
    store.close()
    dropped = drop_caches()
    store = ChunkStore(root, packs=layout)
    await store.open()
    hashes = [h for h, _ in items]
    random.Random(1).shuffle(hashes)

    async def reader(part: list[ChunkHash]) -> None:
        for h in part:
            await store.get(h)

    began = time.perf_counter()
    await asyncio.gather(*(reader(hashes[i::STREAMS]) for i in range(STREAMS)))
    read_s = time.perf_counter() - began
    store.close()
    total = size * count
    disk = await asyncio.to_thread(disk_bytes, root)
    shutil.rmtree(root, ignore_errors=True)
    return {
        "write_mb_s": total / write_s / 1e6,
        "write_chunks_s": count / write_s,
        "read_mb_s": total / read_s / 1e6,
        "read_chunks_s": count / read_s,
        "disk_overhead": disk / total - 1,
        "cold": float(dropped),
    }


def index_costs(root: Path, rows: int) -> None:
    """The index: SQLite rows inserted per second (in batches, as puts commit them), lookups per
    second, its size; beside the memory an in-memory map (what an append-only index file needs
    to be looked up) takes for the same entries."""
    import sqlite3
    import tracemalloc

    from cofre.storage_node.packs import PackStore

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    packs = PackStore(root, target_bytes=1 << 40)
    packs.open()
    db = packs._db
    assert db is not None
    hashes = [hashlib.sha256(i.to_bytes(8, "little")).hexdigest() for i in range(rows)]
    began = time.perf_counter()
    for i in range(0, rows, 256):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO chunks VALUES (?, 1, ?, 4096, 0)",
            [(h, n * 4148) for n, h in enumerate(hashes[i : i + 256], start=i)],
        )
        db.execute("COMMIT")
    insert_s = time.perf_counter() - began
    probe = random.Random(2).sample(hashes, min(rows, 100_000))
    began = time.perf_counter()
    for h in probe:
        packs.lookup(ChunkHash(h))
    lookup_s = time.perf_counter() - began
    packs.close()
    size = sum(p.stat().st_size for p in root.iterdir())
    tracemalloc.start()
    in_memory = {h: (1, n * 4148, 4096) for n, h in enumerate(hashes)}
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del in_memory, sqlite3
    shutil.rmtree(root, ignore_errors=True)
    print(
        f"\nindex of {rows:,} chunks: SQLite {rows / insert_s:,.0f} rows/s inserted in batches "
        f"of 256, {len(probe) / lookup_s:,.0f} lookups/s, {size / rows:.0f} bytes/chunk on disk; "
        f"the same entries in a Python dict: {memory / rows:.0f} bytes/chunk of memory"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/cofre-packbench"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--index-rows", type=int, default=1_000_000)
    parser.add_argument("--index-only", action="store_true", help="only the index's costs")
    args = parser.parse_args()
    index_costs(args.dir / "index", args.index_rows)
    if args.index_only:
        return
    print(
        "| chunk | layout | write MB/s | write chunks/s | read MB/s | read chunks/s "
        "| disk overhead | cache dropped |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for size, count, per_batch in WORKLOADS:
        for name, layout in LAYOUTS.items():
            runs = [
                await run_one(args.dir, layout, size, count, per_batch) for _ in range(args.rounds)
            ]
            best = {k: max(r[k] for r in runs) for k in runs[0]}
            label = f"{size // KIB} KiB" if size < MIB else f"{size // MIB} MiB"
            overhead = min(r["disk_overhead"] for r in runs)
            print(
                f"| {label} x {count} | {name} | {best['write_mb_s']:.1f} "
                f"| {best['write_chunks_s']:.0f} | {best['read_mb_s']:.1f} "
                f"| {best['read_chunks_s']:.0f} | {overhead:.1%} "
                f"| {'yes' if best['cold'] else 'no'} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
