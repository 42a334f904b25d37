"""The SQLite catalog on real files."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from cofre.errors import Conflict
from cofre.manager.catalog import Catalog, CommitEntry, SessionRow
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, UploadId, sha256_hex

A = NodeId("node-a")
B = NodeId("node-b")
C = NodeId("node-c")


def h(seed: str) -> ChunkHash:
    return sha256_hex(seed.encode())


def manifest(name: str, *seeds: str) -> Manifest:
    chunks = tuple(ChunkRef(h(s), 10) for s in seeds)
    return Manifest(
        name=name, size=10 * len(seeds), mode=0o644, mtime=1.0, created=2.0, chunks=chunks
    )


def session(uid: str, name: str, size: int, *, created: float = 100.0) -> SessionRow:
    return SessionRow(
        upload_id=UploadId(uid),
        name=name,
        size=size,
        mode=0o644,
        mtime=1.0,
        created=created,
        expires=created + 3600,
        primary=A,
        nodes=(A, B, C),
        keep_copy=False,
    )


async def commit(cat: Catalog, uid: str, m: Manifest) -> int:
    s = session(uid, m.name, m.size)
    await cat.add_session(s)
    return await cat.commit(
        s, m, manifest_hash=m.hash, manifest_length=len(m.encode()), holders=s.copy_holders
    )


async def test_versions_increase_per_name_and_deletes_mark(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite3")
    await cat.open()
    try:
        assert await commit(cat, "u1", manifest("x", "1", "2")) == 1
        assert await commit(cat, "u2", manifest("x", "3")) == 2
        assert await commit(cat, "u3", manifest("y", "1")) == 1
        latest = await cat.versions(all_versions=False)
        assert [(v.name, v.version, v.chunk_count) for v in latest] == [("x", 2, 1), ("y", 1, 1)]

        assert await cat.delete("x", 2, now=5.0) == [2]
        assert await cat.delete("x", 2, now=5.0) == []
        found = await cat.version("x")
        assert found is not None and found[0].version == 1
        assert [c.hash for c in found[1]] == [h("1"), h("2")]
        assert await commit(cat, "u4", manifest("x", "4")) == 3  # never reused
        assert await cat.counts() == (2, 3)
        assert await cat.delete("x", now=6.0) == [1, 3]
        assert await cat.version("x") is None
    finally:
        await cat.close()


async def test_live_references_and_locations(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite3")
    await cat.open()
    try:
        mx = manifest("x", "1", "2")
        my = manifest("y", "2", "3")
        await commit(cat, "u1", mx)
        await commit(cat, "u2", my)
        assert await cat.live_hashes() == {h("1"), h("2"), h("3"), mx.hash, my.hash}
        locs = await cat.locations([h("1")])
        assert locs == {h("1"): {B, C}}

        await cat.delete("x", now=1.0)
        assert await cat.live_hashes() == {h("2"), h("3"), my.hash}
        assert await cat.drop_unreferenced() == 4  # chunk 1 and x's manifest, on B and C
        assert await cat.locations([h("1"), h("2")]) == {h("1"): set(), h("2"): {B, C}}

        await cat.add_location(h("2"), A, why="copied for a test")
        await cat.remove_locations(B, [h("2")])
        live = {c.hash: c for c in await cat.live_chunks(on_nodes=[A])}
        assert set(live) == {h("2")} and live[h("2")].holders == {A, C}
        assert live[h("2")].length == 10
    finally:
        await cat.close()


async def test_sessions_and_drains_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    cat = Catalog(path)
    await cat.open()
    await cat.add_session(session("open-1", "a", 123, created=50.0))
    await cat.add_session(session("gone-1", "b", 5))
    assert await cat.close_session(UploadId("gone-1"), state="aborted")
    assert not await cat.close_session(UploadId("gone-1"), state="aborted")
    await cat.add_draining([C], now=1.0)
    await cat.close()

    again = Catalog(path)
    await again.open()
    try:
        open_sessions = await again.open_sessions()
        assert [(s.upload_id, s.size, s.nodes, s.created) for s in open_sessions] == [
            ("open-1", 123, (A, B, C), 50.0)
        ]
        assert open_sessions[0].copy_holders == (B, C)
        gone = await again.session(UploadId("gone-1"))
        assert gone is not None and gone.state == "aborted"
        assert await again.draining() == {C}
        assert await again.purge_sessions(closed_before=1e12) == 1
    finally:
        await again.close()


async def test_a_session_commits_once(tmp_path: Path) -> None:
    import pytest

    from cofre.errors import Conflict

    cat = Catalog(tmp_path / "c.sqlite3")
    await cat.open()
    try:
        m = manifest("x", "1")
        s = session("u1", "x", m.size)
        await cat.add_session(s)
        kwargs = {"manifest_hash": m.hash, "manifest_length": 1, "holders": [B]}
        assert await cat.commit(s, m, **kwargs) == 1  # type: ignore[arg-type]
        with pytest.raises(Conflict):
            await cat.commit(s, m, **kwargs)  # type: ignore[arg-type]
        assert [v.version for v in await cat.versions(name="x")] == [1]
        committed = await cat.session(UploadId("u1"))
        assert committed is not None and (committed.state, committed.version) == ("committed", 1)
    finally:
        await cat.close()


async def test_a_batch_session_commits_every_version_at_once_and_is_purged(
    tmp_path: Path,
) -> None:
    cat = Catalog(tmp_path / "c.sqlite3")
    await cat.open()
    try:
        ma, mb = manifest("x", "a1"), manifest("y", "b1", "b2")
        s = session("batch-1", "x", ma.size + mb.size)
        await cat.add_session(s, files=[("x", ma.size), ("y", mb.size), ("z", 7)])
        assert await cat.session_files(UploadId("batch-1")) == [
            ("x", 10, None),
            ("y", 20, None),
            ("z", 7, None),
        ]
        entries = [CommitEntry(m, m.hash, len(m.encode())) for m in (ma, mb)]
        assert await cat.commit_many(s, entries, holders=s.copy_holders) == [1, 1]
        assert await cat.session_files(UploadId("batch-1")) == [
            ("x", 10, 1),
            ("y", 20, 1),
            ("z", 7, None),
        ]
        assert {v.name for v in await cat.versions()} == {"x", "y"}
        found = await cat.latest_many(["y", "nothing", "x"])
        assert [(row.name, len(chunks)) for row, chunks in found] == [("y", 2), ("x", 1)]
        with pytest.raises(Conflict):
            await cat.commit_many(s, entries, holders=s.copy_holders)
        assert await cat.purge_sessions(closed_before=1e12) == 1
        assert await cat.session_files(UploadId("batch-1")) == []
    finally:
        await cat.close()


async def test_an_open_uploads_pins_are_kept_until_it_ends(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite3")
    await cat.open()
    try:
        mx = manifest("x", "1", "2")
        await commit(cat, "u1", mx)
        await cat.delete("x", now=1.0)
        s = session("u2", "y", 20)
        await cat.add_session(s)
        await cat.pin(s.upload_id, [h("1")])
        assert await cat.kept_hashes() == {h("1")}
        assert await cat.live_hashes() == set()
        # Chunk 2 and x's manifest go, chunk 1 keeps its locations while u2 is open.
        assert await cat.drop_unreferenced() == 4
        assert await cat.locations([h("1"), h("2")]) == {h("1"): {B, C}, h("2"): set()}

        assert await cat.close_session(s.upload_id, state="aborted")
        assert await cat.kept_hashes() == set()
        assert await cat.purge_sessions(closed_before=s.expires + 1) == 2
        await cat.pin(s.upload_id, [])  # nothing to pin: no write
        assert await cat.drop_unreferenced() == 2
    finally:
        await cat.close()


async def test_every_copy_records_why_and_since(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite3")
    await cat.open()
    try:
        m = manifest("x", "1")
        s = dataclasses.replace(session("u1", "x", 10), why="placed by a test upload")
        await cat.add_session(s)
        await cat.commit(s, m, manifest_hash=m.hash, manifest_length=9, holders=[B, C], now=50.0)
        await cat.add_location(h("1"), A, why="copied for a test")
        reasons = await cat.copy_reasons([h("1"), h("nothing")])
        assert reasons[h("nothing")] == {}
        assert reasons[h("1")][B] == ("placed by a test upload", 50.0)
        why, since = reasons[h("1")][A]
        assert why == "copied for a test" and since > 50.0
        # A copy recorded before keeps its reason when a later version references the chunk.
        again = dataclasses.replace(session("u2", "y", 10), why="a later upload")
        await cat.add_session(again)
        my = manifest("y", "1")
        await cat.commit(again, my, manifest_hash=my.hash, manifest_length=9, holders=[B])
        assert (await cat.copy_reasons([h("1")]))[h("1")][B][0] == "placed by a test upload"
        assert (await cat.session(again.upload_id)) == dataclasses.replace(
            again, state="committed", version=1
        )
    finally:
        await cat.close()


async def test_a_schema_1_catalog_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    cat = Catalog(path)
    await cat.open()
    m = manifest("x", "1")
    await commit(cat, "u1", m)
    await cat.close()
    # Make it what a schema 1 manager wrote: no reasons anywhere.
    db = sqlite3.connect(path)
    for table, column in (("locations", "why"), ("locations", "since"), ("sessions", "why")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("UPDATE schema_version SET version = 1")
    db.commit()
    db.close()

    cat = Catalog(path)
    await cat.open()
    try:
        assert (await cat.copy_reasons([h("1")]))[h("1")] == {B: ("", 0.0), C: ("", 0.0)}
        found = await cat.session(UploadId("u1"))
        assert found is not None and found.why == "" and found.state == "committed"
        assert await commit(cat, "u2", manifest("x", "2")) == 2
    finally:
        await cat.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone() == (4,)
    db.close()


async def test_a_schema_2_catalog_gains_the_snapshot_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    cat = Catalog(path)
    await cat.open()
    await commit(cat, "u1", manifest("x", "1"))
    await cat.close()
    db = sqlite3.connect(path)
    for table in ("snapshot_entries", "snapshot_chunks", "snapshots", "snapshot_roots"):
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE schema_version SET version = 2")
    db.commit()
    db.close()

    cat = Catalog(path)
    await cat.open()
    try:
        assert await cat.snapshots() == []
        assert h("1") in await cat.live_hashes()
        assert await cat.version_rows() == 1
    finally:
        await cat.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone() == (4,)
    db.close()


async def test_a_schema_3_catalog_gains_the_snapshot_roots(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    cat = Catalog(path)
    await cat.open()
    await commit(cat, "u1", manifest("x", "1"))
    await cat.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE snapshot_roots")
    db.execute("UPDATE schema_version SET version = 3")
    db.commit()
    db.close()

    cat = Catalog(path)
    await cat.open()
    try:
        assert await cat.orphan_roots() == []
        assert await cat.version_rows() == 1
    finally:
        await cat.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone() == (4,)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "snapshot_roots" in tables
    db.close()
