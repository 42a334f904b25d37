"""Tree snapshots through the real command on `cofre local up`: put a directory, list, restore all
or part of it, skip unchanged files, forget by rules, refuse hostile entries."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode
from cofre.models import ChunkHash
from cofre.protocol.client import ManagerClient, open_session
from cofre.protocol.manager_api import TreeEntry
from cofre.storage_node.store import stored_chunks

MiB = 1024 * 1024
ODD = ["sp ace", "new\nline", "ünï-ç😀", "-dash", "x" * 200]


def _host(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _make_tree(it: Any, root: Path) -> dict[str, int]:
    """A tree with every kind of thing a snapshot keeps; -> file sizes by relative path."""
    sizes = {
        "a.txt": 10,
        "empty-file": 0,
        "sub/page": 4096,
        "sub/deeper/big.bin": DEFAULT_CHUNK_SIZE + 5,  # streamed, two chunks
        "sub/mid.bin": 1536 * 1024,  # over the batch limit: streamed, one chunk
        **{f"odd/{n}": 7 + i for i, n in enumerate(ODD)},
    }
    for rel, size in sizes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        it.random_file(root / rel, size)
    (root / "empty-dir" / "nested-empty").mkdir(parents=True)
    os.symlink("../a.txt", root / "sub" / "link-to-a")
    os.symlink("/nonexistent/absolute/target", root / "dangling")
    os.chmod(root / "a.txt", 0o600)
    os.chmod(root / "sub" / "page", 0o755)
    os.chmod(root / "sub" / "deeper", 0o750)
    os.chmod(root / "empty-dir", 0o711)
    os.mkfifo(root / "fifo")  # skipped, with a warning
    for i, rel in enumerate(sorted(sizes)):
        t = 1_600_000_000_000_000_000 + i * 1_000_000_007
        os.utime(root / rel, ns=(t, t))
    os.utime(root / "sub" / "deeper", ns=(1_500_000_000_123_456_789,) * 2)
    os.utime(root / "sub" / "link-to-a", ns=(1_400_000_000_000_000_001,) * 2, follow_symlinks=False)
    if os.geteuid() == 0:
        os.chown(root / "sub" / "page", 1234, 2345)
        os.lchown(root / "dangling", 3456, 4567)
    return sizes


def _listing(root: Path) -> dict[str, tuple[str, int, int, int, int, str | None]]:
    """Every path below ``root``: kind, mode, mtime (ns), uid, gid, symlink target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            kind = (
                "dir"
                if stat.S_ISDIR(st.st_mode)
                else "symlink"
                if stat.S_ISLNK(st.st_mode)
                else "file"
                if stat.S_ISREG(st.st_mode)
                else "other"
            )
            # A directory's mtime moves when the restore writes into it, so it is set last.
            mode = stat.S_IMODE(st.st_mode) if kind != "symlink" else 0
            target = os.readlink(p) if kind == "symlink" else None
            out[str(p.relative_to(root))] = (
                kind,
                mode,
                st.st_mtime_ns,
                st.st_uid,
                st.st_gid,
                target,
            )
    return out


def test_tree_put_list_restore_all_and_a_sub_path(cluster: Any, it: Any, tmp_path: Path) -> None:
    top = f"tree-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src"
    root = src / top
    sizes = _make_tree(it, root)
    host = _host("tree")
    # A relative source is recorded by its absolute path, without the leading '/'.
    put = cluster.cli("put", top, "--host", host, "--tag", "first,t2", "--json", cwd=src)
    assert put.code == 0, put.err
    doc = put.json()
    assert doc["files_new"] == len(sizes) and doc["files_changed"] == doc["files_unchanged"] == 0
    assert doc["dirs"] == 1 + 5  # the top, sub, sub/deeper, odd, empty-dir, its nested-empty
    assert doc["symlinks"] == 2
    assert doc["skipped"] == 1 and "fifo: a fifo" in put.err
    assert doc["bytes_read"] == sum(sizes.values()) == doc["bytes"]
    assert doc["parent"] is None

    listed = cluster.cli("snapshots", "--host", host, "--json")
    assert listed.code == 0, listed.err
    (snap,) = listed.json()
    assert snap["snapshot_id"] == doc["snapshot_id"]
    assert snap["paths"] == [str(root)]
    assert sorted(snap["tags"]) == ["first", "t2"]
    assert snap["files"] == len(sizes) and snap["bytes"] == sum(sizes.values())
    text = cluster.cli("snapshots", "--host", host)
    assert doc["short_id"] in text.out and str(root) in text.out

    out = tmp_path / "out"
    got = cluster.cli("restore", "latest", "--host", host, "--target", str(out))
    assert got.code == 0, got.err
    assert f"{len(sizes)} files, 6 dirs, 2 symlinks" in got.out
    restored = out / str(root).lstrip("/")
    for rel in sizes:
        assert it.sha256_file(restored / rel) == it.sha256_file(root / rel), rel
    want = {k: v for k, v in _listing(root).items() if k != "fifo"}
    assert _listing(restored) == want
    assert not list(out.rglob("*.cofre-part"))

    # Part of the tree, by a path as the snapshot holds it, with or without its leading '/'.
    part = tmp_path / "part"
    sub = f"{root}/sub"
    got = cluster.cli("restore", doc["short_id"], "--target", str(part), "--path", sub)
    assert got.code == 0, got.err
    below = part / str(root).lstrip("/")
    assert sorted(os.listdir(below)) == ["sub"]
    assert _listing(below / "sub") == _listing(root / "sub")

    # Restoring again over it keeps what is there, unless --force.
    again = cluster.cli("restore", doc["short_id"], "--target", str(part), "--path", sub)
    assert again.code == ExitCode.LOCAL_FILE
    assert "already exists; use --force" in again.err
    forced = cluster.cli("restore", "latest", "--host", host, "--target", str(part), "--force")
    assert forced.code == 0, forced.err

    missing = cluster.cli(
        "restore", "latest", "--host", host, "--target", str(part), "--path", "no/such"
    )
    assert missing.code == ExitCode.USAGE and "holds no 'no/such'" in missing.err


def _put(cluster: Any, *args: str) -> dict[str, Any]:
    got = cluster.cli("put", *args, "--json")
    assert got.code == 0, got.err
    doc: dict[str, Any] = got.json()
    return doc


def test_unchanged_files_are_not_read_again_and_a_touched_one_is(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    sizes = {f"f{i:02d}": 5000 + i for i in range(20)}
    sizes["big.bin"] = 2 * DEFAULT_CHUNK_SIZE + 1
    root.mkdir()
    for rel, size in sizes.items():
        it.random_file(root / rel, size)
    host = _host("skip")
    first = _put(cluster, str(root), "--host", host)
    assert first["files_new"] == 21 and first["bytes_read"] == sum(sizes.values())
    stored = cluster.chunk_files()

    second = _put(cluster, str(root), "--host", host)
    assert second["parent"] == first["snapshot_id"]
    assert (second["files_new"], second["files_changed"], second["files_unchanged"]) == (0, 0, 21)
    assert second["bytes_read"] == 0 and second["bytes_sent"] == 0
    # No file's bytes reached any node: what is new there is the snapshot's own tree.
    new = {n: files - stored.get(n, set()) for n, files in cluster.chunk_files().items()}
    assert any(new.values())
    for node, files in new.items():
        held = stored_chunks(cluster.data_dir / "nodes" / node)
        for name in files:
            where = held[ChunkHash(name)]
            with open(where.path, "rb") as fh:
                fh.seek(where.offset)
                head = fh.read(32)
            assert head.startswith((b'{"cofre_tree":1,', b'{"cofre_snapshot":1,')), name

    st = os.stat(root / "f03")
    os.utime(root / "f03", ns=(st.st_mtime_ns + 10**9,) * 2)  # touched: same bytes
    third = _put(cluster, str(root), "--host", host)
    assert third["parent"] == second["snapshot_id"]
    assert (third["files_new"], third["files_changed"], third["files_unchanged"]) == (0, 1, 20)
    assert third["bytes_read"] == sizes["f03"]
    assert third["bytes_sent"] == 0  # its chunk is stored already

    forced = _put(cluster, str(root), "--host", host, "--force-read")
    assert forced["files_changed"] == 21 and forced["files_unchanged"] == 0
    assert forced["bytes_read"] == sum(sizes.values()) and forced["bytes_sent"] == 0

    # An explicit parent that is not the latest: compared against it.
    (root / "new").write_bytes(b"n")
    fourth = _put(cluster, str(root), "--host", host, "--parent", first["short_id"])
    assert fourth["parent"] == first["snapshot_id"]
    assert (fourth["files_new"], fourth["files_changed"], fourth["files_unchanged"]) == (1, 1, 20)

    out = tmp_path / "out"
    got = cluster.cli("restore", fourth["snapshot_id"], "--target", str(out))
    assert got.code == 0, got.err
    for rel in [*sizes, "new"]:
        assert it.sha256_file(out / str(root).lstrip("/") / rel) == it.sha256_file(root / rel)


def test_forget_by_rules_with_dry_run_and_by_id(cluster: Any, it: Any, tmp_path: Path) -> None:
    root = tmp_path / "kept"
    root.mkdir()
    host = _host("forget")
    ids = []
    for i in range(4):
        (root / "f").write_bytes(os.urandom(100 + i))
        ids.append(_put(cluster, str(root), "--host", host)["snapshot_id"])

    dry = cluster.cli("forget", "--host", host, "--keep-last", "2", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    report = dry.json()
    assert report["dry_run"] and report["removed"] == []
    (group,) = report["groups"]
    assert [k["snapshot"]["snapshot_id"] for k in group["keep"]] == ids[:1:-1]
    assert all(k["reasons"] for k in group["keep"])
    assert [s["snapshot_id"] for s in group["remove"]] == ids[1::-1]
    assert len(cluster.cli("snapshots", "--host", host, "--json").json()) == 4
    text = cluster.cli("forget", "--host", host, "--keep-last", "2", "--dry-run")
    assert "would remove" in text.out and "keep 2" in text.out

    done = cluster.cli("forget", "--host", host, "--keep-last", "2", "--json")
    assert done.code == 0, done.err
    assert sorted(done.json()["removed"]) == sorted(ids[:2])
    left = [s["snapshot_id"] for s in cluster.cli("snapshots", "--host", host, "--json").json()]
    assert left == ids[2:]

    by_id = cluster.cli("forget", ids[2][:8], "--prune")
    assert by_id.code == 0, by_id.err
    assert f"removed snapshot {ids[2][:8]}" in by_id.out and "pruned" in by_id.out
    left = [s["snapshot_id"] for s in cluster.cli("snapshots", "--host", host, "--json").json()]
    assert left == ids[3:]
    gone = cluster.cli("restore", ids[2], "--target", str(tmp_path / "gone"))
    assert gone.code == ExitCode.NOT_FOUND


async def _hostile_snapshot(
    url: str, token: str, host: str, outside: Path, *, ca: str | None
) -> str:
    """A snapshot whose entries try to write through symlinks it holds itself."""
    async with open_session(ca_file=Path(ca) if ca else None) as session:
        m = ManagerClient(session, url, token)
        opened = await m.open_snapshot(time=1.0, host=host, paths=["/hostile"])
        sid = opened.snapshot_id
        raw: list[dict[str, Any]] = [
            {"path": "evil", "kind": "dir"},
            {"path": "evil/abs", "kind": "symlink", "target": str(outside)},
            {"path": "evil/abs/pwned", "kind": "file"},
            {"path": "evil/up", "kind": "symlink", "target": "../.."},
            {"path": "evil/up/escaped", "kind": "dir"},
            {"path": "fine", "kind": "file"},
        ]
        entries = [TreeEntry.model_validate({"mode": 0o755, "mtime_ns": 0, **e}) for e in raw]
        await m.add_snapshot_entries(sid, entries)
        info = await m.commit_snapshot(sid, entries=len(entries))
        return info.snapshot_id


def test_hostile_entries_are_refused(cluster: Any, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    host = _host("hostile")
    sid = asyncio.run(_hostile_snapshot(cluster.url, cluster.token, host, outside, ca=cluster.ca))
    target = tmp_path / "t" / "target"
    got = cluster.cli("restore", sid, "--target", str(target))
    assert got.code == ExitCode.LOCAL_FILE
    assert got.err.count("refused") == 2, got.err
    assert "'evil/abs' is not a directory" in got.err
    assert "Traceback" not in got.err
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(tmp_path / "t")) == ["target"]
    assert os.readlink(target / "evil" / "abs") == str(outside)  # kept as a link, not followed
    assert (target / "fine").read_bytes() == b""


def test_files_keep_versions_beside_a_snapshot_and_get_makes_parents(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    src = it.random_file(tmp_path / "one", 1000)
    (tmp_path / "dir").mkdir()
    it.random_file(tmp_path / "dir" / "two", 10)
    host = _host("mixed")
    mixed = cluster.cli("put", str(src), str(tmp_path / "dir"), "--host", host)
    assert mixed.code == 0, mixed.err
    assert f"{src}  version 1" in mixed.out and "files: 1 new" in mixed.out
    listed = {(f["name"], f["version"]) for f in cluster.cli("ls", "--json").json()}
    assert (str(src), 1) in listed  # the file is a version of its own name
    assert [s["files"] for s in cluster.cli("snapshots", "--host", host, "--json").json()] == [1]
    both = cluster.cli("put", str(src), str(tmp_path / "dir"), "--json")
    assert both.code == ExitCode.USAGE and "not both" in both.err

    name = f"snapcli/{uuid.uuid4().hex[:8]}"
    assert cluster.cli("put", str(src), "--name", name).code == 0
    dest = tmp_path / "not" / "yet" / "here.bin"
    got = cluster.cli("get", name, "-o", str(dest))
    assert got.code == 0, got.err
    assert dest.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("bad", ["/etc/passwd", "a/../b"])
def test_hostile_paths_cannot_be_stored(cluster: Any, bad: str) -> None:
    async def attempt() -> str:
        async with open_session(ca_file=Path(cluster.ca) if cluster.ca else None) as session:
            m = ManagerClient(session, cluster.url, cluster.token)
            opened = await m.open_snapshot(time=1.0, host=_host("bad"), paths=["/x"])
            body = {"entries": [{"path": bad, "kind": "dir", "mode": 0o755, "mtime_ns": 0}]}
            async with session.post(
                f"{cluster.url}/v1/snapshots/{opened.snapshot_id}/entries",
                json=body,
                headers={"Authorization": f"Bearer {cluster.token}"},
            ) as resp:
                return f"{resp.status} {await resp.text()}"

    answer = asyncio.run(attempt())
    assert answer.startswith("400 ") and "path" in answer
