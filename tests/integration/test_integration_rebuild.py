"""A lost catalog rebuilt from the nodes: `cofre local up` restarted without its manager dir;
per-name versions and tree snapshots both come back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode


def _listing(c: Any) -> list[tuple[str, int, int, int]]:
    """(name, version, size, chunks) of every live version; `created` is left out (a rebuild
    takes it from the manifest, the catalog kept the commit's time)."""
    rows = c.cli("ls", "--versions", "--json").json()
    return sorted((r["name"], r["version"], r["size"], r["chunks"]) for r in rows)


def _without_commit_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A rebuild records a snapshot's own time as its commit time (the catalog's is lost)."""
    return [{k: v for k, v in r.items() if k != "committed"} for r in rows]


def test_catalog_rebuild_after_the_manager_dir_is_lost(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "cluster"
    c = start_local(data_dir, nodes=3, replication_factor=2)
    src = tmp_path / "src"
    (src / "top").mkdir(parents=True)
    small = {f"top/s{i}": it.random_file(src / "top" / f"s{i}", 1000 + i) for i in range(5)}
    small_s1 = it.sha256_file(src / "top" / "s1")
    # What was put, before s1 changes for the snapshots below.
    small_sums = {name: it.sha256_file(path) for name, path in small.items()}
    put = c.cli("put", "top", "--per-file", cwd=src)
    assert put.code == 0, put.err
    # The same directory as a tree snapshot, and a second one after a change.
    (src / "top" / "sub").mkdir()
    it.random_file(src / "top" / "sub" / "deep", DEFAULT_CHUNK_SIZE + 7)
    os.symlink("s0", src / "top" / "link")
    for tag in ("one", "two"):
        snap = c.cli("put", "top", "--tag", tag, "--json", cwd=src)
        assert snap.code == 0, snap.err
        it.random_file(src / "top" / "s1", 1500)
    snapshots = c.cli("snapshots", "--json").json()
    assert len(snapshots) == 2
    big = it.random_file(tmp_path / "big", DEFAULT_CHUNK_SIZE + 123)
    first = it.random_file(tmp_path / "v1", 3000)
    for path, name in ((big, "big"), (first, "twice"), (big, "twice")):
        done = c.cli("put", str(path), "--name", name)
        assert done.code == 0, done.err
    before = _listing(c)
    assert len(before) == 8
    assert c.stop() == 0

    shutil.rmtree(data_dir / "manager")
    again = start_local(data_dir, nodes=3, replication_factor=2)
    assert again.cli("ls", "--json").json() == []

    rebuilt = again.cli("catalog", "rebuild", "--json")
    assert rebuilt.code == 0, rebuilt.err
    assert rebuilt.json() == {
        "versions": 8,
        "names": 7,
        "skipped_incomplete": 0,
        "skipped_unreadable": 0,
        "skipped_uncommitted": 0,
        "nodes_scanned": 3,
        "snapshots": 2,
        "snapshots_skipped": 0,
    }
    assert _listing(again) == before
    assert _without_commit_time(again.cli("snapshots", "--json").json()) == _without_commit_time(
        snapshots
    )
    # The newest snapshot restores to the tree as it was then (s1 changed after it).
    out = tmp_path / "restored"
    got = again.cli("restore", "latest", "--target", str(out))
    assert got.code == 0, got.err
    restored = out / str(src / "top").lstrip("/")
    assert os.readlink(restored / "link") == "s0"
    for rel in ["s0", "s2", "s3", "s4", "sub/deep"]:
        assert it.sha256_file(restored / rel) == it.sha256_file(src / "top" / rel), rel
    older = tmp_path / "restored-first"
    got = again.cli("restore", snapshots[0]["short_id"], "--target", str(older))
    assert got.code == 0, got.err
    assert it.sha256_file(older / str(src / "top").lstrip("/") / "s1") == small_s1

    for name, want in {**small_sums, "big": it.sha256_file(big)}.items():
        dest = tmp_path / "back" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        got = again.cli("get", name, "-o", str(dest))
        assert got.code == 0, got.err
        assert it.sha256_file(dest) == want
    for version, path in ((1, first), (2, big)):
        dest = tmp_path / "back" / f"twice.{version}"
        got = again.cli("get", "twice", "--version", str(version), "-o", str(dest))
        assert got.code == 0, got.err
        assert it.sha256_file(dest) == it.sha256_file(path)
    fsck = again.cli("fsck")
    assert fsck.code == 0, fsck.out
    assert "HEALTHY" in fsck.out

    refused = again.cli("catalog", "rebuild")
    assert refused.code == ExitCode.FAILURE
    assert "only fills an empty catalog" in it.one_error_line(refused)
    assert _listing(again) == before
    assert again.stop() == 0
