"""Backing up and restoring through the real command: byte-identical, versioned, streamed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode

MiB = 1024 * 1024


def _name(tag: str) -> str:
    return f"transfer/{tag}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    "size",
    [0, 1, DEFAULT_CHUNK_SIZE * 7 // 2],
    ids=["empty", "one-byte", "three-and-a-half-chunks"],
)
def test_put_then_get_is_byte_identical(cluster: Any, it: Any, tmp_path: Path, size: int) -> None:
    src = it.random_file(tmp_path / "src", size)
    os.chmod(src, 0o640)
    os.utime(src, (1_600_000_000, 1_600_000_000.5))
    name = _name(f"size{size}")
    put = cluster.cli("put", str(src), "--name", name)
    assert put.code == 0, put.err
    assert put.out.split() == [name, "version", "1", *put.out.split()[3:]]

    dest = tmp_path / "restored"
    got = cluster.cli("get", name, "-o", str(dest))
    assert got.code == 0, got.err
    assert dest.stat().st_size == size
    assert it.sha256_file(dest) == it.sha256_file(src)
    assert dest.stat().st_mode & 0o777 == 0o640
    assert dest.stat().st_mtime == pytest.approx(1_600_000_000.5, abs=1e-3)


def test_get_to_stdout_and_default_destination(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src.bin", 3 * MiB)
    name = _name("stdout") + "/data.bin"
    assert cluster.cli("put", str(src), "--name", name).code == 0

    piped = cluster.cli("get", name, "-o", "-")
    assert piped.code == 0, piped.err
    assert piped.out_bytes == src.read_bytes()

    here = tmp_path / "here"
    here.mkdir()
    got = cluster.cli("get", name, cwd=here)
    assert got.code == 0, got.err
    assert (here / "data.bin").read_bytes() == src.read_bytes()


def test_existing_destination_needs_force(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src", 1000)
    name = _name("force")
    assert cluster.cli("put", str(src), "--name", name).code == 0
    dest = tmp_path / "dest"
    dest.write_bytes(b"keep me")

    refused = cluster.cli("get", name, "-o", str(dest))
    assert refused.code == ExitCode.LOCAL_FILE
    assert "--force" in it.one_error_line(refused)
    assert dest.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src"]  # no temp left behind

    forced = cluster.cli("get", name, "-o", str(dest), "--force")
    assert forced.code == 0, forced.err
    assert dest.read_bytes() == src.read_bytes()


def test_versions(cluster: Any, it: Any, tmp_path: Path) -> None:
    name = _name("versions")
    first = it.random_file(tmp_path / "v1", 5 * MiB)
    second = it.random_file(tmp_path / "v2", 2 * MiB + 17)
    assert (
        cluster.cli("put", str(first), "--name", name, "--json").json()["results"][0]["version"]
        == 1
    )
    put2 = cluster.cli("put", str(second), "--name", name, "--json")
    assert put2.code == 0, put2.err
    assert put2.json()["results"][0]["version"] == 2

    listed = [f for f in cluster.cli("ls", "--versions", "--json").json() if f["name"] == name]
    assert sorted(f["version"] for f in listed) == [1, 2]
    latest = [f for f in cluster.cli("ls", "--json").json() if f["name"] == name]
    assert [(f["version"], f["size"]) for f in latest] == [(2, 2 * MiB + 17)]

    assert cluster.cli("get", name, "-o", str(tmp_path / "latest")).code == 0
    assert (tmp_path / "latest").read_bytes() == second.read_bytes()
    old = cluster.cli("get", name, "--version", "1", "-o", str(tmp_path / "old"))
    assert old.code == 0, old.err
    assert (tmp_path / "old").read_bytes() == first.read_bytes()

    missing = cluster.cli("get", name, "--version", "9", "-o", str(tmp_path / "nine"))
    assert missing.code == ExitCode.NOT_FOUND
    it.one_error_line(missing)
    assert not (tmp_path / "nine").exists()


def test_unchanged_file_is_not_sent_again(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src", 3 * DEFAULT_CHUNK_SIZE)
    name = _name("dedup")
    first = cluster.cli("put", str(src), "--name", name, "--json")
    assert first.code == 0, first.err
    assert first.json()["results"][0]["sent_bytes"] == 3 * DEFAULT_CHUNK_SIZE
    # Re-puts, under its name and others: placement picks whichever nodes score best each
    # time, and chunks stored with every copy elsewhere neither travel nor gain copies.
    for again_as, version in ((name, 2), (f"{name}-b", 1), (f"{name}-c", 1), (name, 3)):
        again = cluster.cli("put", str(src), "--name", again_as, "--json")
        assert again.code == 0, again.err
        assert again.json()["results"][0]["version"] == version
        assert again.json()["results"][0]["sent_bytes"] == 0
    human = cluster.cli("put", str(src), "--name", name)
    assert human.code == 0, human.err
    assert human.out.strip() == (
        f"{name}  version 4  12.0 MiB  (0 B sent, the rest was stored already)"
    )
    holders = [cluster.holders(h) for h in it.chunk_hashes(src, DEFAULT_CHUNK_SIZE)]
    assert all(len(h) == 2 for h in holders), holders
    got = cluster.cli("get", f"{name}-c", "-o", str(tmp_path / "back"))
    assert got.code == 0, got.err
    assert it.sha256_file(tmp_path / "back") == it.sha256_file(src)


def test_directory_put_and_prefix_restore(cluster: Any, it: Any, tmp_path: Path) -> None:
    top = f"tree-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / top
    (root / "sub" / "deeper").mkdir(parents=True)
    files = {
        "a.txt": 10,
        "sub/b.bin": DEFAULT_CHUNK_SIZE + 5,
        "sub/deeper/c": 0,
        "sub/deeper/d": 4096,
    }
    for rel, size in files.items():
        it.random_file(root / rel, size)
    os.symlink("a.txt", root / "link-to-a")  # not a regular file: skipped

    put = cluster.cli("put", "--per-file", top, "--json", cwd=tmp_path / "src")
    assert put.code == 0, put.err
    assert sorted(r["name"] for r in put.json()["results"]) == sorted(
        f"{top}/{rel}" for rel in files
    )

    out = tmp_path / "out"
    got = cluster.cli("get", "--prefix", f"{top}/", "-o", str(out))
    assert got.code == 0, got.err
    restored = {str(p.relative_to(out / top)) for p in (out / top).rglob("*") if p.is_file()}
    assert restored == set(files)
    for rel in files:
        assert it.sha256_file(out / top / rel) == it.sha256_file(root / rel)


def test_two_hundred_mib_streams_with_bounded_memory(cluster: Any, it: Any, tmp_path: Path) -> None:
    size = 200 * MiB
    src = it.random_file(tmp_path / "big", size)
    name = _name("big")
    put = cluster.cli("put", str(src), "--name", name)
    assert put.code == 0, put.err
    assert put.err == ""  # no progress bar when stderr is not a terminal
    # The file never sits in memory: parallelism x chunk size plus the interpreter.
    assert put.maxrss < 128 * MiB, put.maxrss

    dest = tmp_path / "big.restored"
    got = cluster.cli("get", name, "-o", str(dest))
    assert got.code == 0, got.err
    assert got.err == ""
    assert got.maxrss < 128 * MiB, got.maxrss
    assert it.sha256_file(dest) == it.sha256_file(src)
    dest.unlink()
    src.unlink()


def test_file_that_changes_size_while_read_fails_clearly(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    # Kernel attribute files claim one size and yield fewer bytes: a file that shrank mid-read.
    candidates = [
        Path("/sys/kernel/mm/transparent_hugepage/enabled"),
        Path("/sys/kernel/uevent_seqnum"),
        Path("/sys/power/state"),
    ]
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_size != len(path.read_bytes()):
                break
        except OSError:
            continue
    else:
        pytest.skip("no file here whose size changes between stat and read")
    name = _name("shrinks")
    put = cluster.cli("put", str(path), "--name", name)
    assert put.code == ExitCode.LOCAL_FILE
    assert "while it was read" in it.one_error_line(put)
    assert name not in {f["name"] for f in cluster.cli("ls", "--versions", "--json").json()}
