"""Snapshots survive the loss of the manager's catalog: their trees are stored on the nodes at
commit (pieces and a root, F copies each), `catalog rebuild` brings them back from there, a
forgotten one stays forgotten, and fsck and repair cover the tree objects like any chunk."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from cofre.errors import Conflict
from cofre.manager import snapshot_store, uploads
from cofre.manager.keys import MANAGER
from cofre.manager.tree_objects import decode_root
from cofre.models import ChunkHash, SnapshotId
from cofre.protocol.manager_api import TreeEntry

from .conftest import Cluster
from .test_manager_snapshots import FILES, T0, Backup, restore

FACTOR = 2


async def _roots(cluster: Cluster, among: set[str] | None = None) -> dict[ChunkHash, set[str]]:
    """Every snapshot root on the nodes (or those ``among`` them) -> the nodes holding it."""
    out: dict[ChunkHash, set[str]] = {}
    for node_id in sorted(among or cluster.nodes):
        for c in await cluster.node(node_id).manifests():
            if c.kind == "snapshot":
                out.setdefault(c.hash, set()).add(node_id)
    return out


async def _holders(cluster: Cluster, h: ChunkHash) -> set[str]:
    return {
        n
        for n in cluster.nodes
        if h in (await cluster.node(n).check([h], verify=True, touch=False)).present
    }


async def _everything(cluster: Cluster) -> dict[str, Any]:
    """Each committed snapshot's metadata (not when the catalog committed it) and its whole
    tree, file bytes read back from the nodes."""
    out = {}
    for s in await cluster.api.list_snapshots():
        meta = s.model_dump(exclude={"committed"})
        tree = await restore(cluster, s.snapshot_id)
        out[s.snapshot_id] = (meta, tree)
    return out


async def _backups(cluster: Cluster) -> list[SnapshotId]:
    first = await Backup(cluster, FILES, tags=["daily"]).run()
    changed = FILES | {"src/a.txt": b"alpha, changed " * 300, "src/new": b"new" * 50}
    second = await Backup(
        cluster,
        changed,
        time=T0 + 60,
        parent=SnapshotId(first.snapshot_id),
        reuse={"src/b.bin", "src/sub/c"},
        batch=2,
    ).run()
    third = await Backup(cluster, {"other/x": b"x" * 10}, host="server", time=T0 + 120).run()
    return [SnapshotId(s.snapshot_id) for s in (first, second, third)]


async def test_a_commit_writes_the_tree_to_f_nodes(make_cluster: Any) -> None:
    cluster = await make_cluster(4, factor=FACTOR)
    info = await Backup(cluster, FILES, tags=["t"]).run()
    roots = await _roots(cluster)
    assert len(roots) == 1
    ((root, on),) = roots.items()
    assert len(on) == FACTOR
    raw = await cluster.node(sorted(on)[0]).get_chunk(root)
    doc = decode_root(raw)
    assert (doc.id, doc.host, doc.tags, doc.paths, doc.entries) == (
        info.snapshot_id,
        "laptop",
        ["t"],
        ["/home/ana/src"],
        info.entries,
    )
    assert doc.pieces
    for piece, _ in doc.pieces:
        assert len(await _holders(cluster, piece)) == FACTOR
    # Recorded like a chunk of the snapshot: where it is, and why.
    report = await cluster.api.fsck()
    assert report.healthy
    where = await cluster.api.locate_chunks([root])
    assert {cluster.node_id_of(u) for u in where.chunks[0].nodes} == on


async def test_rebuild_brings_back_every_snapshot_with_identical_entries(
    make_cluster: Any, tmp_path: Path
) -> None:
    first = await make_cluster(3, factor=FACTOR)
    await first.send("plain-file", b"a version too" * 10)
    ids = await _backups(first)
    before = await _everything(first)
    assert sorted(before) == sorted(ids)

    second = await make_cluster(
        3, factor=FACTOR, data_dir=tmp_path / "manager-new", node_servers=first.nodes
    )
    assert await second.api.list_snapshots() == []
    # The lost catalog's snapshots count: no new backup over it, whose commit would let GC
    # collect them.
    with pytest.raises(Conflict, match="run `cofre catalog rebuild` before new backups"):
        await second.api.open_snapshot(time=T0, host="h", paths=["/x"], tags=[], parent=None)

    report = await second.api.rebuild_catalog()
    assert (report.versions, report.snapshots, report.snapshots_skipped) == (1, 3, 0)
    assert await _everything(second) == before
    parents = {s.snapshot_id: s.parent for s in await second.api.list_snapshots()}
    assert parents[ids[1]] == ids[0]
    assert (await second.api.get_snapshot("latest", host="laptop")).snapshot_id == ids[1]
    fsck = await second.api.fsck()
    assert fsck.healthy and fsck.summary.snapshots == 3
    # Everything is referenced again: a GC frees nothing, and a backup on top of a recovered
    # parent commits.
    assert (await second.api.gc(grace_s=0)).deleted_chunks == 0
    assert await _everything(second) == before
    nxt = await Backup(second, FILES, time=T0 + 300, parent=ids[0], reuse=set(FILES)).run()
    assert nxt.parent == ids[0]


async def test_a_forgotten_snapshot_stays_forgotten_after_a_rebuild(
    make_cluster: Any, tmp_path: Path
) -> None:
    first = await make_cluster(3, factor=FACTOR)
    ids = await _backups(first)
    roots_before = await _roots(first)
    assert len(roots_before) == 3
    assert await first.api.delete_snapshot(ids[0]) == [ids[0]]
    # Its root is gone from every node at once; the others' stay.
    assert len(await _roots(first)) == 2
    assert await first.manager.server.app[MANAGER].catalog.orphan_roots() == []
    kept = await _everything(first)

    second = await make_cluster(
        3, factor=FACTOR, data_dir=tmp_path / "manager-new", node_servers=first.nodes
    )
    report = await second.api.rebuild_catalog()
    assert report.snapshots == 2
    assert await _everything(second) == kept
    assert ids[0] not in {s.snapshot_id for s in await second.api.list_snapshots()}


async def test_a_root_is_deleted_once_every_node_can_answer(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster = await make_cluster(3, factor=FACTOR)
    ids = await _backups(cluster)
    m = cluster.manager.server.app[MANAGER]
    # A node whose store vanished is unready: a root it may hold cannot be deleted there yet.
    shutil.rmtree(tmp_path / "node-2")
    await cluster.probe_out_dead_nodes()
    assert await cluster.api.delete_snapshot(ids[2]) == [ids[2]]
    assert len(await m.catalog.orphan_roots()) == 1
    # Left everywhere until every node answers.
    assert len(await _roots(cluster, among={"node-0", "node-1"})) == 3
    (tmp_path / "node-2").mkdir()
    await cluster.probe()
    await cluster.api.gc(grace_s=3600)  # a GC pass deletes what is left
    assert await m.catalog.orphan_roots() == []
    assert len(await _roots(cluster)) == 2


async def test_fsck_and_repair_cover_the_tree_objects(make_cluster: Any) -> None:
    cluster = await make_cluster(4, factor=FACTOR)
    await Backup(cluster, FILES).run()
    ((root, on),) = (await _roots(cluster)).items()
    lost_on = sorted(on)[0]
    await cluster.lose(lost_on, root)
    report = await cluster.api.fsck()
    assert not report.healthy
    assert [(c.hash, c.status) for c in report.snapshots[0].unhealthy] == [
        (root, "under_replicated")
    ]
    repaired = await cluster.api.repair()
    assert (repaired.lost_copies, repaired.copies_made, repaired.healthy) == (1, 1, True)
    assert len(await _holders(cluster, root)) == FACTOR
    assert (await cluster.api.fsck()).healthy


async def test_a_commit_that_never_landed(make_cluster: Any, tmp_path: Path) -> None:
    """The tree written, then the manager stops before the commit transaction: the catalog
    that survives never shows the snapshot and deletes its root once it expires; a lost
    catalog's rebuild recovers it only because its root is complete (every piece, every
    chunk on the nodes), and skips a root whose tree is not."""
    first = await make_cluster(3, factor=FACTOR)
    m = first.manager.server.app[MANAGER]
    whole = Backup(first, FILES)
    await whole.open()
    await whole.upload()
    await whole.send_entries()
    row = await m.catalog.snapshot(whole.snapshot_id)
    assert row is not None
    await snapshot_store.store(m, row)  # the commit transaction never runs
    broken = Backup(first, {"src/q": b"q" * 100}, time=T0 + 5)
    await broken.open()
    await broken.upload()
    await broken.send_entries()
    row = await m.catalog.snapshot(broken.snapshot_id)
    assert row is not None
    stored = await snapshot_store.store(m, row)
    assert await first.api.list_snapshots() == []
    # The broken one's only piece is lost everywhere.
    piece = next(h for h in stored.objects if h != stored.root)
    for n in await _holders(first, piece):
        await first.lose(n, piece)
    assert len(await _roots(first)) == 2

    second = await make_cluster(
        3, factor=FACTOR, data_dir=tmp_path / "manager-new", node_servers=first.nodes
    )
    report = await second.api.rebuild_catalog()
    assert (report.snapshots, report.snapshots_skipped) == (1, 1)
    (back,) = await second.api.list_snapshots()
    assert back.snapshot_id == whole.snapshot_id and back.entries == len(whole.entries)
    tree = await restore(second, back.snapshot_id)
    assert {p: tree[p] for p in FILES} == FILES

    # Where the catalog survived: the open snapshots expire, and their roots go.
    await uploads.sweep_expired(m, now=time.time() + 10**6)
    assert await m.catalog.orphan_roots() == []
    assert await _roots(first) == {}


async def test_a_tree_of_several_pieces_comes_back_whole(make_cluster: Any, tmp_path: Path) -> None:
    first = await make_cluster(3, factor=FACTOR)
    b = Backup(first, {"src/a": b"a" * 100}, batch=1000)
    await b.open()
    await b.upload()
    b.entries += [
        TreeEntry(path=f"src/d/{i:05d}", kind="dir", mode=0o40755, mtime_ns=i) for i in range(2300)
    ]
    await b.send_entries()
    info = await b.commit()
    ((root, on),) = (await _roots(first)).items()
    doc = decode_root(await first.node(sorted(on)[0]).get_chunk(root))
    assert len(doc.pieces) == 3 and doc.entries == info.entries == len(b.entries)
    before = await _everything(first)

    second = await make_cluster(
        3, factor=FACTOR, data_dir=tmp_path / "manager-new", node_servers=first.nodes
    )
    assert (await second.api.rebuild_catalog()).snapshots == 1
    assert await _everything(second) == before
