"""The manager over nodes whose volume fails: gone, full, or holding a copy of the wrong size."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cofre.config import NodeConfig
from cofre.models import ChunkHash, UploadId
from cofre.storage_node import create_app as create_node_app

from .conftest import TOKEN


async def _ready(cluster: Any) -> dict[str, bool]:
    return {n.node_id: n.ready for n in (await cluster.api.nodes()).nodes}


async def _holders(cluster: Any, name: str) -> set[str]:
    where = await cluster.api.where(name)
    return {c.node_id for e in (where.manifest, *where.chunks) for c in e.copies}


async def test_a_node_whose_store_vanished_is_unready_and_gets_nothing(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster = await make_cluster(3, factor=2, keep_copy=True)
    gone = tmp_path / "node-2"
    shutil.rmtree(gone)
    await cluster.probe_out_dead_nodes()
    assert await _ready(cluster) == {"node-0": True, "node-1": True, "node-2": False}
    for i in range(4):
        await cluster.send(f"f{i}", os.urandom(3000))
        assert "node-2" not in await _holders(cluster, f"f{i}")
    assert not gone.exists()  # nothing recreated it while it was away

    gone.mkdir()  # back, empty: the node recovers by itself at the next probe
    await cluster.probe()
    assert (await _ready(cluster))["node-2"] is True


async def test_a_truncated_copy_is_corrupt_not_known_and_repaired(make_cluster: Any) -> None:
    # Files: only a file can be cut short (a packed record's length is in its header).
    cluster = await make_cluster(4, factor=2, files_only=True)
    data = os.urandom(3 * 1024)
    _, manifest, _ = await cluster.send("t", data)
    empty, short, _ = (ChunkHash(c.hash) for c in manifest.chunks)
    where = await cluster.api.where("t")
    empty_on = sorted(c.node_id for c in where.chunks[0].copies)[0]
    short_on = sorted(c.node_id for c in where.chunks[1].copies)[0]
    os.truncate(cluster.chunk_file(empty_on, empty), 0)
    os.truncate(cluster.chunk_file(short_on, short), 100)

    # A re-put does not rely on the truncated copies: those chunks are sent again.
    up = await cluster.api.create_upload(name="t2", size=len(data), mode=0o640, mtime=1.5)
    known = await cluster.api.known(UploadId(up.upload_id), [empty, short])
    assert known == set()
    await cluster.api.abort_upload(UploadId(up.upload_id))

    report = await cluster.api.fsck(name="t")  # presence only, no re-hash
    assert not report.healthy
    entries = {e.hash: e for e in report.files[0].chunks}
    assert entries[empty].status == "corrupt" and entries[empty].corrupt_on == [empty_on]
    assert entries[short].status == "corrupt" and entries[short].corrupt_on == [short_on]

    repaired = await cluster.api.repair()
    assert repaired.copies_made == 2 and repaired.healthy
    after = await cluster.api.fsck(name="t")
    assert after.healthy, after


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, as the volume of a nearly full node."""
    mount = tmp_path / f"vol-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a nearly full node (needs root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_node_below_the_free_space_minimum_is_not_placed_on(
    make_cluster: Any, aiohttp_server: Any, small_volume: Path
) -> None:
    config = NodeConfig(token=TOKEN, node_id="node-0", data_dir=small_volume, reserve_bytes=0)
    full = await aiohttp_server(create_node_app(config), host="127.0.0.1")
    cluster = await make_cluster(
        3, factor=2, keep_copy=True, node_servers={"node-0": full}, min_free_bytes=4 << 20
    )
    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    assert listed["node-0"].ready and listed["node-0"].free_bytes < 4 << 20
    for i in range(4):
        await cluster.send(f"f{i}", os.urandom(2000))
        assert await _holders(cluster, f"f{i}") == {"node-1", "node-2"}
