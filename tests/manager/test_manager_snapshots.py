"""Tree snapshots at the app level: a manager over real storage node apps, backed up as the CLI
does it (uploads whose chunks are committed into an open snapshot, entries in batches, one
commit), then listed, read, restored from the nodes, deleted, forgotten and collected."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from cofre.chunks import iter_chunks
from cofre.errors import BadRequest, ChunksNotStored, Conflict, NotFound
from cofre.manager import gc, uploads
from cofre.manager.keys import MANAGER
from cofre.models import ChunkHash, ChunkRef, SnapshotId, UploadId
from cofre.protocol.client import NodeClient
from cofre.protocol.manager_api import FileDecl, ForgetRequest, SnapshotInfo, TreeEntry

from ..helpers import eventually
from ..metrics_text import Scraped
from .conftest import CHUNK_SIZE, TOKEN, Cluster

DAY = 86400.0
T0 = 1_700_000_000.0


def _refs(data: bytes) -> tuple[list[ChunkRef], dict[ChunkHash, bytes]]:
    refs, blobs = [], {}
    for ref, blob in iter_chunks(io.BytesIO(data), CHUNK_SIZE):
        refs.append(ref)
        blobs[ref.hash] = blob
    return refs, blobs


def file_entry(path: str, data: bytes, refs: list[ChunkRef] | None = None) -> TreeEntry:
    chunks = refs if refs is not None else _refs(data)[0]
    return TreeEntry(
        path=path,
        kind="file",
        mode=0o100640,
        mtime_ns=1_600_000_000_123_456_789,
        size=len(data),
        chunks=[(c.hash, c.length) for c in chunks],
        ctime_ns=1_600_000_000_000_000_001,
        inode=2**64 - 2,
        device=64769,
    )


@dataclass
class Backup:
    """One backup of a tree under ``src/``: its files' bytes are uploaded (unless re-used
    from the parent), its entries sent in batches of ``batch``."""

    cluster: Cluster
    files: dict[str, bytes]
    time: float = T0
    host: str = "laptop"
    paths: list[str] = field(default_factory=lambda: ["/home/ana/src"])
    tags: list[str] = field(default_factory=list)
    parent: SnapshotId | None = None
    reuse: set[str] = field(default_factory=set)  # paths whose chunks the parent holds
    batch: int = 4
    snapshot_id: SnapshotId = field(init=False)
    entries: list[TreeEntry] = field(default_factory=list)

    async def open(self) -> None:
        opened = await self.cluster.api.open_snapshot(
            time=self.time, host=self.host, paths=self.paths, tags=self.tags, parent=self.parent
        )
        self.snapshot_id = SnapshotId(opened.snapshot_id)
        self.entries = [
            TreeEntry(path="src", kind="dir", mode=0o40755, mtime_ns=5, uid=1000, gid=1000),
            TreeEntry(path="src/empty", kind="dir", mode=0o40700, mtime_ns=6),
            TreeEntry(path="src/link", kind="symlink", mode=0o120777, mtime_ns=7, target="../x"),
        ]

    async def upload(self) -> None:
        """One batch upload of every file not re-used, closed into the snapshot."""
        api = self.cluster.api
        sent = {p: d for p, d in self.files.items() if p not in self.reuse}
        for path, data in self.files.items():
            self.entries.append(file_entry(path, data))
        if not sent:
            return
        up = await api.create_batch_upload([FileDecl(name=p, size=len(d)) for p, d in sent.items()])
        uid = UploadId(up.upload_id)
        primary = NodeClient(self.cluster.http, up.primary_url, TOKEN)
        refs: list[ChunkRef] = []
        blobs: dict[ChunkHash, bytes] = {}
        for data in sent.values():
            r, b = _refs(data)
            refs += r
            blobs |= b
        known = await api.known(uid, list(blobs))
        for h in await primary.missing(uid, list(blobs), ticket=up.ticket):
            if h not in known:
                await primary.upload_chunk(uid, h, blobs[h], ticket=up.ticket)
        await api.commit_snapshot_chunks(self.snapshot_id, uid, refs)

    async def send_entries(self) -> None:
        for start in range(0, len(self.entries), self.batch):
            batch = self.entries[start : start + self.batch]
            await self.cluster.api.add_snapshot_entries(self.snapshot_id, batch)

    async def commit(self) -> SnapshotInfo:
        return await self.cluster.api.commit_snapshot(self.snapshot_id, entries=len(self.entries))

    async def run(self) -> SnapshotInfo:
        await self.open()
        await self.upload()
        await self.send_entries()
        return await self.commit()


async def restore(cluster: Cluster, ref: str, *, under: str | None = None) -> dict[str, Any]:
    """Every entry of the snapshot (under a path), a page of 3 at a time, with each file's
    bytes read back from the nodes the manager names."""
    info = await cluster.api.get_snapshot(ref)
    out: dict[str, Any] = {}
    after = None
    while True:
        page = await cluster.api.snapshot_entries(
            SnapshotId(info.snapshot_id), path=under, after=after, limit=3
        )
        assert len(page.entries) <= 3
        for e in page.entries:
            out[e.path] = e
        if page.next_after is None:
            break
        after = page.next_after
    for path, e in list(out.items()):
        if e.kind != "file":
            continue
        located = {
            c.hash: c for c in (await cluster.api.locate_chunks([h for h, _ in e.chunks])).chunks
        }
        data = b""
        for h, _ in e.chunks:
            data += await NodeClient(cluster.http, located[h].nodes[0], TOKEN).get_chunk(h)
        out[path] = data
    return out


FILES = {
    "src/a.txt": b"alpha " * 400,
    "src/b.bin": bytes(range(256)) * 9,
    "src/sub/c": b"c" * 3000,
    "src/sub2/d": b"",
}


async def test_a_snapshot_commits_in_one_transaction_after_its_batches(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    b = Backup(cluster, FILES)
    await b.open()
    await b.upload()
    await b.send_entries()
    sid = b.snapshot_id
    # Entries sent in batches, chunks committed, and still nothing to see.
    assert await cluster.api.list_snapshots() == []
    for ref in (sid, sid[:8], "latest"):
        with pytest.raises(NotFound):
            await cluster.api.get_snapshot(ref)
    with pytest.raises(NotFound):
        await cluster.api.snapshot_entries(sid)
    # A batch lost on the way: the commit says so and nothing becomes visible.
    with pytest.raises(Conflict, match=f"holds {len(b.entries)} entries but 99 were sent"):
        await cluster.api.commit_snapshot(sid, entries=99)
    assert await cluster.api.list_snapshots() == []

    info = await b.commit()
    assert (info.snapshot_id, info.short_id) == (sid, sid[:8])
    assert (info.entries, info.files) == (len(FILES) + 3, len(FILES))
    assert info.bytes == sum(len(d) for d in FILES.values())
    assert info.host == "laptop" and info.paths == ["/home/ana/src"] and info.parent is None
    # A commit retried after its answer was lost answers the same.
    assert await b.commit() == info
    assert [s.snapshot_id for s in await cluster.api.list_snapshots()] == [sid]
    assert (await cluster.api.get_snapshot(sid[:6])).snapshot_id == sid

    restored = await restore(cluster, "latest")
    assert {p: restored[p] for p in FILES} == FILES
    link, empty = restored["src/link"], restored["src/empty"]
    assert link.kind == "symlink" and link.target == "../x" and link.mode == 0o120777
    assert empty.kind == "dir" and empty.mode == 0o40700
    assert restored["src"].uid == 1000
    a = (await cluster.api.snapshot_entries(sid, path="src/a.txt")).entries
    assert [(e.path, e.mtime_ns, e.inode, e.device) for e in a] == [
        ("src/a.txt", 1_600_000_000_123_456_789, 2**64 - 2, 64769)
    ]
    assert a[0].to_entry() == file_entry("src/a.txt", FILES["src/a.txt"])
    # A part of the tree: `src/sub` and below, not `src/sub2`.
    assert await restore(cluster, sid, under="src/sub") == {"src/sub/c": FILES["src/sub/c"]}
    # Once committed, it takes no more entries.
    with pytest.raises(Conflict, match="committed, not open"):
        await cluster.api.add_snapshot_entries(sid, [b.entries[0]])


async def test_list_filters_latest_and_prefixes(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    one = await Backup(cluster, {"src/x": b"1" * 10}, time=T0, host="a", tags=["daily"]).run()
    two = await Backup(cluster, {"src/x": b"2" * 10}, time=T0 + 60, host="b").run()
    three = await Backup(
        cluster, {"src/x": b"3" * 10}, time=T0 + 120, host="a", paths=["/etc"], tags=["daily", "x"]
    ).run()
    api = cluster.api
    assert [s.snapshot_id for s in await api.list_snapshots()] == [
        one.snapshot_id,
        two.snapshot_id,
        three.snapshot_id,
    ]
    assert [s.snapshot_id for s in await api.list_snapshots(host="a")] == [
        one.snapshot_id,
        three.snapshot_id,
    ]
    assert [s.snapshot_id for s in await api.list_snapshots(tags=["daily", "x"])] == [
        three.snapshot_id
    ]
    assert [s.snapshot_id for s in await api.list_snapshots(path="/etc")] == [three.snapshot_id]
    assert await api.list_snapshots(host="nobody") == []
    assert (await api.get_snapshot("latest")).snapshot_id == three.snapshot_id
    latest_a_src = await api.get_snapshot("latest", host="a", path="/home/ana/src")
    assert latest_a_src.snapshot_id == one.snapshot_id
    with pytest.raises(NotFound, match="host 'c'"):
        await api.get_snapshot("latest", host="c")
    with pytest.raises(NotFound):
        await api.get_snapshot("ffff" if not one.snapshot_id.startswith("ffff") else "eeee")


async def test_entries_page_in_path_order_under_a_path(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    files = {f"src/d{i % 3}/f{i:02d}": bytes([i]) * 5 for i in range(20)}
    files["src/d1x"] = b"sibling"
    info = await Backup(cluster, files, batch=7).run()
    sid = SnapshotId(info.snapshot_id)
    everything = await restore(cluster, sid)
    assert list(everything) == sorted(everything)  # byte order of the paths
    assert len(everything) == len(files) + 3
    under = await restore(cluster, sid, under="src/d1")
    assert list(under) == sorted(p for p in files if p.startswith("src/d1/"))
    assert all(under[p] == files[p] for p in under)
    page = await cluster.api.snapshot_entries(sid, path="src/d1x", limit=5)
    assert [e.path for e in page.entries] == ["src/d1x"] and page.next_after is None


async def test_the_commit_refuses_chunks_not_stored_with_f_copies(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    b = Backup(cluster, {"src/ok": b"fine" * 300})
    await b.open()
    await b.upload()
    never_sent = b"never sent" * 50
    ghost = file_entry("src/ghost", never_sent)
    b.entries.append(ghost)
    await b.send_entries()
    with pytest.raises(ChunksNotStored) as refused:
        await b.commit()
    named = {h for h, _ in ghost.chunks}
    assert set(refused.value.extra["chunks"]) == named
    assert refused.value.extra["count"] == len(named)
    assert all(h in refused.value.detail for h in named)
    assert await cluster.api.list_snapshots() == []
    # A chunk the catalog holds, claimed at another length, is refused as well.
    ok_hash, ok_len = b.entries[3].chunks[0]
    liar = Backup(cluster, {})
    await liar.open()
    lie = TreeEntry(
        path="f",
        kind="file",
        mode=0o100644,
        mtime_ns=1,
        size=ok_len + 1,
        chunks=[(ok_hash, ok_len + 1)],
    )
    await cluster.api.add_snapshot_entries(liar.snapshot_id, [lie])
    with pytest.raises(ChunksNotStored, match=ok_hash):
        await cluster.api.commit_snapshot(liar.snapshot_id, entries=1)


async def test_hostile_entries_are_a_400_naming_the_field(make_cluster: Any) -> None:
    cluster = await make_cluster(3, ready=False)
    b = Backup(cluster, {})
    await b.open()
    route = f"/v1/snapshots/{b.snapshot_id}/entries"
    good = {"path": "a", "kind": "dir", "mode": 0o40755, "mtime_ns": 1}
    for bad_path, why in (
        ("/etc/passwd", "relative"),
        ("a/../../etc", "'..'"),
        ("a//b", "normalised"),
        ("a\x00b", "NUL"),
        ("x" * 5000, "4096"),
    ):
        detail = await cluster.refused("POST", route, json={"entries": [good | {"path": bad_path}]})
        assert detail.startswith("body.entries.0.path: ") and why in detail, detail
    detail = await cluster.refused("POST", route, json={"entries": [good | {"kind": "symlink"}]})
    assert "needs its target" in detail
    detail = await cluster.refused("POST", route, json={"entries": [good, good]})
    assert "once per snapshot" in detail
    # Across batches too, and the refused batch writes nothing.
    await cluster.api.add_snapshot_entries(b.snapshot_id, [TreeEntry.model_validate(good)])
    two = [TreeEntry.model_validate(good | {"path": "b"}), TreeEntry.model_validate(good)]
    with pytest.raises(BadRequest, match="'a' was sent before"):
        await cluster.api.add_snapshot_entries(b.snapshot_id, two)
    info = await cluster.api.commit_snapshot(b.snapshot_id, entries=1)
    assert info.entries == 1
    # A bad snapshot reference in the path is a 400 too.
    detail = await cluster.refused("GET", "/v1/snapshots/not-an-id/entries")
    assert "snapshot" in detail


async def _on_nodes(cluster: Cluster, hashes: set[ChunkHash]) -> set[ChunkHash]:
    found: set[ChunkHash] = set()
    for node_id in cluster.nodes:
        result = await cluster.node(node_id).check(sorted(hashes), verify=False, touch=False)
        found |= set(result.present)
    return found


async def test_delete_and_gc_free_only_what_nothing_else_references(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    only_a = b"only in a" * 200
    shared = b"in both" * 200
    only_b = b"only in b" * 200
    a = await Backup(cluster, {"src/x": only_a, "src/y": shared}).run()
    b = await Backup(cluster, {"src/y": shared, "src/z": only_b}, time=T0 + 1).run()
    # A per-name version sharing a chunk with snapshot a keeps it as well.
    version_data = b"only in a" * 200
    await cluster.send("kept-by-a-version", version_data)
    extra = b"a's own, after all" * 100
    c = await Backup(cluster, {"src/w": extra}, time=T0 + 2).run()

    gone = {r.hash for r in _refs(extra)[0]}
    kept = {r.hash for d in (only_a, shared, only_b) for r in _refs(d)[0]}
    assert await cluster.api.delete_snapshot(c.snapshot_id[:10]) == [c.snapshot_id]
    assert await cluster.api.delete_snapshot(a.snapshot_id) == [a.snapshot_id]
    with pytest.raises(NotFound):
        await cluster.api.delete_snapshot(a.snapshot_id)
    result = await cluster.api.gc(grace_s=0)
    assert result.deleted_chunks >= len(gone)
    assert await _on_nodes(cluster, gone) == set()
    assert await _on_nodes(cluster, kept) == kept
    restored = await restore(cluster, b.snapshot_id)
    assert restored["src/y"] == shared and restored["src/z"] == only_b
    report = await cluster.api.fsck()
    assert report.healthy and report.summary.snapshots == 1
    assert [s.snapshot_id for s in report.snapshots] == [b.snapshot_id]
    # Its data chunks, and its tree stored on the nodes: one piece and the root.
    assert report.snapshots[0].chunks == 2 + len(
        {r.hash for d in (shared, only_b) for r in _refs(d)[0]}
    )
    where = await cluster.api.snapshot_where(b.snapshot_id, "src/z")
    assert where.size == len(only_b) and where.replication_factor == 2
    assert all(c.status == "ok" and len(c.copies) == 2 for c in where.chunks)
    assert all("upload" in copy.why for c in where.chunks for copy in c.copies)


async def test_a_gc_delete_between_the_presence_check_and_the_record_fails_the_commit(
    make_cluster: Any,
) -> None:
    """The chunk commit checks presence on the nodes without the commit lock; a GC batch that
    deletes a checked chunk before the commit records it makes the commit check again under
    the lock, and fail naming what is missing (never a snapshot over a deleted chunk)."""
    cluster = await make_cluster(3)
    m = cluster.manager.app[MANAGER]
    data = b"re-sent before gc" * 100
    first = await Backup(cluster, {"src/f": data}).run()
    await cluster.api.delete_snapshot(first.snapshot_id)
    hashes = sorted({r.hash for r in _refs(data)[0]})
    # The nodes still hold the chunks, now garbage: a new upload of the same bytes sends only
    # what its copy nodes lack and commits over the copies found there.
    b = Backup(cluster, {"src/f": data}, time=T0 + 1)
    await b.open()
    up = await cluster.api.create_batch_upload([FileDecl(name="src/f", size=len(data))])
    uid = UploadId(up.upload_id)
    primary = NodeClient(cluster.http, up.primary_url, TOKEN)
    blobs = _refs(data)[1]
    for h in await primary.missing(uid, hashes, ticket=up.ticket):
        await primary.upload_chunk(uid, h, blobs[h], ticket=up.ticket)
    async with m.catalog_lock:
        commit = asyncio.create_task(
            cluster.api.commit_snapshot_chunks(b.snapshot_id, uid, _refs(data)[0])
        )
        # Its presence check passes without the lock; then it waits for the lock.
        await eventually(
            lambda: len(getattr(m.catalog_lock, "_waiters", None) or ()) == 1,
            what="the chunk commit checked and waits for the commit lock",
        )
        deleted = 0
        for state in m.registry.ready_nodes():
            deleted += (await gc.delete_batch(m, state, hashes))[0]
        assert deleted >= 2 * len(hashes)  # at least the upload's two copies
    with pytest.raises(Conflict, match="not on every copy node"):
        await commit
    assert await _on_nodes(cluster, set(hashes)) == set()
    await cluster.api.add_snapshot_entries(b.snapshot_id, [file_entry("src/f", data)])
    with pytest.raises(ChunksNotStored):
        await cluster.api.commit_snapshot(b.snapshot_id, entries=1)


async def test_fsck_reports_a_snapshot_chunk_lost_on_every_node(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    info = await Backup(cluster, {"src/x": b"lost" * 100}).run()
    lost = _refs(b"lost" * 100)[0][0].hash
    for node_id in cluster.nodes:
        if lost in (await cluster.node(node_id).check([lost], verify=False, touch=False)).present:
            await cluster.lose(node_id, lost)
    report = await cluster.api.fsck()
    assert not report.healthy
    (health,) = report.snapshots
    assert health.snapshot_id == info.snapshot_id and not health.healthy
    assert [(c.hash, c.status) for c in health.unhealthy] == [(lost, "missing")]


async def test_forget_dry_run_reports_and_the_real_run_removes(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    made = [
        await Backup(cluster, {"src/x": bytes([i]) * 100}, time=T0 + i * DAY / 2).run()
        for i in range(5)
    ]
    other = await Backup(cluster, {"src/x": b"o"}, time=T0, host="other").run()
    rules = ForgetRequest(keep_last=1, keep_daily=2, dry_run=True)
    report = await cluster.api.forget(rules)
    assert report.dry_run and report.removed == []
    groups = {g.host: g for g in report.groups}
    assert set(groups) == {"laptop", "other"}
    laptop = groups["laptop"]
    assert laptop.paths == ["/home/ana/src"]
    kept = {k.snapshot.snapshot_id: k.reasons for k in laptop.keep}
    # Half-day steps from T0 (2023-11-14 22:13 UTC): 4 is the newest, 3 shares its day.
    assert kept == {
        made[4].snapshot_id: ["last snapshot", "daily snapshot"],
        made[2].snapshot_id: ["daily snapshot"],
    }
    assert [s.snapshot_id for s in laptop.remove] == [
        made[3].snapshot_id,
        made[1].snapshot_id,
        made[0].snapshot_id,
    ]
    assert [k.snapshot.snapshot_id for k in groups["other"].keep] == [other.snapshot_id]
    assert len(await cluster.api.list_snapshots()) == 6  # a dry run removes nothing

    real = await cluster.api.forget(rules.model_copy(update={"dry_run": False}))
    assert sorted(real.removed) == sorted(s.snapshot_id for s in laptop.remove)
    left = {s.snapshot_id for s in await cluster.api.list_snapshots()}
    assert left == {made[4].snapshot_id, made[2].snapshot_id, other.snapshot_id}
    # Filters limit what is considered; no rule at all is refused before anything is sent.
    only_other = await cluster.api.forget(ForgetRequest(keep_last=1, host="other"))
    assert [g.host for g in only_other.groups] == ["other"] and only_other.removed == []
    status, problem = await cluster.call("POST", "/v1/snapshots/forget", json={})
    assert status == 400 and "no keep rule" in problem["detail"]


async def test_an_abandoned_snapshot_expires_and_gc_frees_its_chunks(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    data = b"abandoned" * 300
    b = Backup(cluster, {"src/x": data})
    await b.open()
    await b.upload()
    hashes = {r.hash for r in _refs(data)[0]}
    # Its chunks are live while it is open.
    await cluster.api.gc(grace_s=0)
    assert await _on_nodes(cluster, hashes) == hashes
    m = cluster.manager.server.app[MANAGER]
    await uploads.sweep_expired(m, now=time.time() + 2 * cluster.config.upload.session_ttl_s)
    assert await m.catalog.snapshot(b.snapshot_id) is None
    with pytest.raises(NotFound):
        await cluster.api.add_snapshot_entries(b.snapshot_id, b.entries[:1])
    await cluster.api.gc(grace_s=0)
    assert await _on_nodes(cluster, hashes) == set()


async def test_a_backup_racing_forget_and_gc_completes(make_cluster: Any) -> None:
    """A backup over a parent that is forgotten and collected while it runs: the unchanged
    files it re-uses from the parent, the chunks it uploads and those `known` tells it not to
    send all stay, its commit succeeds, and it restores; what only the parent held goes."""
    cluster = await make_cluster(3)
    unchanged = b"unchanged" * 500
    dropped = b"deleted since" * 300
    parent = await Backup(cluster, {"src/keep": unchanged, "src/old": dropped}).run()
    new_file = b"new file" * 400
    same_as_dropped_part = dropped[: CHUNK_SIZE * 2]  # its chunks are `known` (the parent's)
    files = {"src/keep": unchanged, "src/new": new_file, "src/dedup": same_as_dropped_part}
    b = Backup(
        cluster,
        files,
        time=T0 + DAY,
        parent=SnapshotId(parent.snapshot_id),
        reuse={"src/keep"},
    )
    await b.open()
    forgotten = await cluster.api.forget(ForgetRequest(keep_tags=["none-has-it"]))
    assert forgotten.removed == [parent.snapshot_id]
    # GC passes racing the upload, the entries and the commit.
    gc_results = []

    async def collect_repeatedly() -> None:
        for _ in range(4):
            gc_results.append(await cluster.api.gc(grace_s=0))
            await asyncio.sleep(0)

    async def back_up() -> SnapshotInfo:
        await b.upload()
        await b.send_entries()
        return await b.commit()

    _, info = await asyncio.gather(collect_repeatedly(), back_up())
    gc_results.append(await cluster.api.gc(grace_s=0))
    assert info.files == 3 and info.parent == parent.snapshot_id
    restored = await restore(cluster, info.snapshot_id)
    assert {p: restored[p] for p in files} == files
    only_parent = {r.hash for r in _refs(dropped)[0]} - {
        r.hash for r in _refs(same_as_dropped_part)[0]
    }
    assert only_parent and await _on_nodes(cluster, only_parent) == set()
    assert sum(r.deleted_chunks for r in gc_results) >= len(only_parent)
    assert (await cluster.api.fsck()).healthy


async def test_an_open_snapshot_over_a_missing_parent_is_refused(make_cluster: Any) -> None:
    cluster = await make_cluster(3, ready=False)
    with pytest.raises(NotFound, match="the parent"):
        await cluster.api.open_snapshot(
            time=T0, host="h", paths=["/x"], parent=SnapshotId("0" * 32)
        )


async def test_forget_places_snapshots_at_the_ends_of_time_in_any_zone(make_cluster: Any) -> None:
    cluster = await make_cluster(3, ready=False)
    for t in (0.0, 32_503_680_000.0):
        b = Backup(cluster, {}, time=t)
        await b.open()
        await b.send_entries()
        await b.commit()
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        report = await cluster.api.forget(ForgetRequest(keep_yearly=1, timezone=zone, dry_run=True))
        (group,) = report.groups
        assert [k.snapshot.time for k in group.keep] == [32_503_680_000.0]
        assert [s.time for s in group.remove] == [0.0]
    status, problem = await cluster.call(
        "POST", "/v1/snapshots", json={"time": 1e300, "host": "h", "paths": ["/x"]}
    )
    assert status == 400 and problem["detail"].startswith("body.time: "), problem


async def test_metrics_count_snapshots_and_their_commits(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    before = time.time()
    await Backup(cluster, {"src/x": b"metrics" * 200}).run()
    resp = await cluster.manager.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    scraped = Scraped(await resp.text())
    assert scraped.value("cofre_manager_catalog_snapshots") == 1
    assert scraped.value("cofre_manager_catalog_versions") == 0
    # A cluster that only takes snapshots is not a cluster whose backups stopped.
    assert scraped.value("cofre_manager_last_commit_timestamp_seconds") >= before
    # Its data chunks and its tree on the nodes (one piece, the root).
    assert scraped.value("cofre_manager_catalog_live_chunks") == 2 + len(_refs(b"metrics" * 200)[1])


async def test_repair_brings_a_snapshot_chunk_back_to_f_copies(make_cluster: Any) -> None:
    cluster = await make_cluster(4)
    data = b"repair me" * 100
    info = await Backup(cluster, {"src/x": data}).run()
    (chunk,) = _refs(data)[0]
    before = await cluster.api.snapshot_where(info.snapshot_id, "src/x")
    lost_on = sorted(c.node_id for c in before.chunks[0].copies)[0]
    await cluster.node(lost_on).delete_chunks([chunk.hash])
    report = await cluster.api.repair()
    assert (report.lost_copies, report.copies_made, report.healthy) == (1, 1, True)
    after = await cluster.api.snapshot_where(info.snapshot_id, "src/x")
    good = [c for c in after.chunks[0].copies if c.state == "ok"]
    # Two good copies again; the new one may be on any node that lacked it, the one that
    # lost it included (placement ranks them; the tree objects move their stored bytes).
    assert len(good) == 2
    assert any(c.why.startswith(f"repair: copies lost on {lost_on}") for c in good)
    assert (await restore(cluster, info.snapshot_id))["src/x"] == data
