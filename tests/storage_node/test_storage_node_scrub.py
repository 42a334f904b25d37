"""The scrub through a real node app: rot is found without anyone reading the chunk."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from cofre.config import PackConfig, ScrubConfig
from cofre.storage_node import keys
from cofre.storage_node.app import SCRUB_LOOP
from cofre.storage_node.scrub import STATE_FILE, Scrubber

from ..metrics_text import Scraped, check_against_doc
from .conftest import Kit

Start = Callable[..., Awaitable[tuple[TestServer, web.Application]]]
# A cycle so short that every chunk is due at once, and a budget no test waits for.
FAST = ScrubConfig(cycle_s=0.001, bytes_per_s=1 << 40)


async def _stored(kit: Kit, client: Any, *seeds: str) -> list[tuple[str, bytes]]:
    out = []
    for seed in seeds:
        h, data = kit.chunk(seed)
        resp = await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
        assert resp.status == 201, await resp.text()
        out.append((h, data))
    return out


def _file(root: Path, chunk_hash: str) -> Path:
    """A chunk's file in the one-file-per-chunk layout (``pack.max_chunk_bytes`` 0)."""
    return root / "chunks" / chunk_hash[:2] / chunk_hash[2:4] / chunk_hash


async def test_the_scrub_finds_a_flipped_byte_and_reports_it(
    kit: Kit, start_node: Start, tmp_path: Path, aiohttp_client: Any
) -> None:
    server, app = await start_node("node-0", scrub=FAST)
    client = await aiohttp_client(server)
    stored = await _stored(kit, client, "a", "b", "c")
    rotten, data = stored[1]
    kit.flip_byte(tmp_path / "node-0", rotten)

    await app[SCRUB_LOOP].run_once()

    resp = await client.get("/v1/stats", headers=kit.auth)
    stats = await resp.json()
    scrub = stats["scrub"]
    assert scrub["enabled"] is True
    assert scrub["cycle_chunks"] == 3 and scrub["cycle_bytes"] == 3 * len(data)
    assert scrub["last_full_pass_at"] is not None
    assert scrub["findings_total"] == 1
    assert [(f["seq"], f["hash"]) for f in scrub["findings"]] == [(1, rotten)]
    # Quarantined: gone from its place, reported corrupt, one chunk fewer.
    assert kit.stored(tmp_path / "node-0", rotten) is None and stats["chunk_count"] == 2
    resp = await client.post(
        "/v1/chunks/check", json={"hashes": [h for h, _ in stored]}, headers=kit.auth
    )
    assert (await resp.json())["corrupt"] == [rotten]
    # The cursor and totals are kept for a restart.
    saved = json.loads((tmp_path / "node-0" / STATE_FILE).read_text())
    assert saved["cursor"] is None and saved["chunks"] == 3


async def test_a_long_cycle_reads_only_what_is_due(
    kit: Kit, start_node: Start, aiohttp_client: Any
) -> None:
    server, app = await start_node("node-0", scrub=ScrubConfig(cycle_s=7 * 86400.0))
    client = await aiohttp_client(server)
    await _stored(kit, client, "a", "b")
    await app[SCRUB_LOOP].run_once()
    scrub = (await (await client.get("/v1/stats", headers=kit.auth)).json())["scrub"]
    # A week's cycle just begun: nothing is due yet, so nothing was read.
    assert scrub["cycle_started_at"] is not None
    assert (scrub["cycle_chunks"], scrub["last_full_pass_at"]) == (0, None)


async def test_the_scrub_is_off_at_zero(kit: Kit, start_node: Start, aiohttp_client: Any) -> None:
    server, app = await start_node("node-0", scrub=ScrubConfig(cycle_s=0))
    assert SCRUB_LOOP not in app
    client = await aiohttp_client(server)
    scrub = (await (await client.get("/v1/stats", headers=kit.auth)).json())["scrub"]
    assert scrub["enabled"] is False


async def _metrics(client: Any, kit: Kit) -> Scraped:
    resp = await client.get("/metrics", headers=kit.auth)
    assert resp.status == 200, await resp.text()
    return Scraped(await resp.text())


async def test_metrics_count_what_the_scrub_read_and_found_by_kind(
    kit: Kit, start_node: Start, tmp_path: Path, aiohttp_client: Any
) -> None:
    # A file per chunk: only a file can be cut to nothing (a packed record keeps its length).
    server, app = await start_node("node-0", scrub=FAST, pack=PackConfig(max_chunk_bytes=0))
    client = await aiohttp_client(server)
    stored = await _stored(kit, client, "a", "b", "c", "d")
    size = sum(len(data) for _, data in stored)
    before = await _metrics(client, kit)
    assert before.value("cofre_node_scrub_enabled") == 1
    assert before.value("cofre_node_scrub_chunks_total") == 0
    assert before.value("cofre_node_scrub_cycles_total") == 0
    assert before.value("cofre_node_scrub_last_cycle_completed_timestamp_seconds") == 0
    # One copy with a flipped byte, one cut to nothing.
    flipped_hash, data = stored[1]
    flipped = bytearray(data)
    flipped[3] ^= 0x80
    _file(tmp_path / "node-0", flipped_hash).write_bytes(bytes(flipped))
    _file(tmp_path / "node-0", stored[2][0]).write_bytes(b"")

    await app[SCRUB_LOOP].run_once()

    after = await _metrics(client, kit)
    assert after.value("cofre_node_scrub_chunks_total") == 4
    # What the scrub read: the empty copy has no bytes left to read.
    assert after.value("cofre_node_scrub_bytes_total") == size - len(stored[2][1])
    assert after.value("cofre_node_scrub_findings_total", kind="hash_mismatch") == 1
    assert after.value("cofre_node_scrub_findings_total", kind="empty") == 1
    assert after.value("cofre_node_scrub_cycles_total") == 1
    assert after.value("cofre_node_scrub_cycle_progress_ratio") == 1
    stats = (await (await client.get("/v1/stats", headers=kit.auth)).json())["scrub"]
    assert (
        after.value("cofre_node_scrub_last_cycle_completed_timestamp_seconds")
        == (stats["last_full_pass_at"])
    )
    assert (
        after.value("cofre_node_scrub_cycle_started_timestamp_seconds")
        == (stats["cycle_started_at"])
    )
    assert stats["findings_total"] == 2
    check_against_doc(after, "Storage node")


async def test_metrics_show_a_cycle_part_way(
    kit: Kit, start_node: Start, aiohttp_client: Any
) -> None:
    # Chunks of 2 KiB in a 100 s cycle: 3 s into it, well under one chunk is due (none read),
    # then at 50 s half the bytes are due.
    now = [1_000_000.0]
    scrub = ScrubConfig(cycle_s=100.0, bytes_per_s=1 << 40)
    server, app = await start_node("node-0", scrub=scrub)
    scrubber: Scrubber = app[keys.SCRUBBER]
    scrubber._clock = lambda: now[0]
    scrubber.started_at = now[0]
    client = await aiohttp_client(server)
    for seed in "abcd":
        h, data = kit.chunk(seed, 2048)
        resp = await client.put(f"/v1/chunks/{h}", data=data, headers=kit.write_headers("node-0"))
        assert resp.status == 201
    now[0] += 3
    await app[SCRUB_LOOP].run_once()
    begun = await _metrics(client, kit)
    assert begun.value("cofre_node_scrub_cycle_started_timestamp_seconds") == 1_000_000.0
    assert begun.value("cofre_node_scrub_cycle_progress_ratio") == 0
    now[0] += 47
    await app[SCRUB_LOOP].run_once()
    half = await _metrics(client, kit)
    assert half.value("cofre_node_scrub_chunks_total") == 2
    assert half.value("cofre_node_scrub_cycle_progress_ratio") == 0.5
    assert half.value("cofre_node_scrub_cycles_total") == 0
    assert half.value("cofre_node_scrub_last_cycle_completed_timestamp_seconds") == 0


async def test_metrics_say_the_scrub_is_off(
    kit: Kit, start_node: Start, aiohttp_client: Any
) -> None:
    server, _ = await start_node("node-0", scrub=ScrubConfig(cycle_s=0))
    client = await aiohttp_client(server)
    off = await _metrics(client, kit)
    assert off.value("cofre_node_scrub_enabled") == 0
    assert off.value("cofre_node_scrub_chunks_total") == 0
