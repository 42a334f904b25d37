"""Many small files through the real command: batched uploads, byte-identical restores."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode


def test_small_files_travel_in_batches_and_round_trip(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    top = f"batch-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / top
    sizes: dict[str, int] = {}
    for i in range(300):
        sizes[f"d{i % 7}/f{i:03d}"] = (i * 37) % 5000  # includes empty files
    sizes["big/one"] = DEFAULT_CHUNK_SIZE * 2 + 3
    sizes["big/two"] = 3 * 1024 * 1024  # above the batch threshold, below a chunk
    for rel, size in sizes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        it.random_file(root / rel, size)
    # Dedup within a batch: equal files share their chunk, stored on two nodes only.
    same = os.urandom(3000)
    for rel in ("dup/a", "dup/b", "dup/c"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(same)
        sizes[rel] = len(same)
    os.chmod(root / "d0/f000", 0o600)

    env = dict(cluster.env, COFRE_LOG_LEVEL="DEBUG")
    put = cluster.cli("put", "--per-file", top, "--json", cwd=tmp_path / "src", env=env)
    assert put.code == 0, put.err[-2000:]
    results = {r["name"]: r for r in put.json()["results"]}
    assert set(results) == {f"{top}/{rel}" for rel in sizes}
    assert all(r["version"] == 1 for r in results.values())
    # One upload per batch, not per file; the two big files stream on their own.
    creates = put.err.count("request method=POST url=" + cluster.url + "/v1/uploads\n")
    creates += put.err.count("request method=POST url=" + cluster.url + "/v1/uploads ")
    assert 3 <= creates <= 10, creates
    # The client only ever talked to the manager and primaries (nodes), nobody else.
    manager = cluster.url.split("//", 1)[1]
    nodes = {n["url"].split("//", 1)[1] for n in cluster.state()["nodes"]}
    assert it.request_hosts(put.err) <= nodes | {manager}
    assert len(cluster.holders(hashlib.sha256(same).hexdigest())) == 2

    out = tmp_path / "out"
    got = cluster.cli("get", "--prefix", f"{top}/", "-o", str(out))
    assert got.code == 0, got.err
    restored = {str(p.relative_to(out / top)) for p in (out / top).rglob("*") if p.is_file()}
    assert restored == set(sizes)
    for rel in sizes:
        assert it.sha256_file(out / top / rel) == it.sha256_file(root / rel), rel
    assert (out / top / "d0/f000").stat().st_mode & 0o777 == 0o600
    fsck = cluster.cli("fsck", "--json").json()
    assert fsck["summary"]["under_replicated"] == 0 and fsck["summary"]["missing"] == 0

    # Backing the same tree up again makes second versions and sends no file byte, wherever
    # placement puts the new uploads.
    again = cluster.cli("put", "--per-file", top, "--json", cwd=tmp_path / "src")
    assert again.code == 0, again.err
    assert all(r["version"] == 2 for r in again.json()["results"])
    assert sum(r["sent_bytes"] for r in again.json()["results"]) == 0


def test_a_file_unreadable_in_a_batch_fails_alone(cluster: Any, it: Any, tmp_path: Path) -> None:
    top = f"partial-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / top
    root.mkdir(parents=True)
    for i in range(5):
        it.random_file(root / f"ok{i}", 100 + i)
    os.mkfifo(root / "fifo")  # skipped by the walk: not a regular file
    put = cluster.cli("put", "--per-file", top, "--json", cwd=tmp_path / "src")
    assert put.code == 0, put.err
    assert sorted(r["name"] for r in put.json()["results"]) == sorted(
        f"{top}/ok{i}" for i in range(5)
    )


def test_a_batch_restore_over_an_existing_file_fails_that_file_alone(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    top = f"over-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / top
    root.mkdir(parents=True)
    for i in range(12):  # one batch, big enough to sync whole filesystems
        it.random_file(root / f"f{i:02d}", 200 + i)
    assert cluster.cli("put", "--per-file", top, cwd=tmp_path / "src").code == 0

    out = tmp_path / "out"
    (out / top).mkdir(parents=True)
    (out / top / "f03").write_bytes(b"mine")
    got = cluster.cli("get", "--prefix", f"{top}/", "-o", str(out))
    assert got.code == ExitCode.LOCAL_FILE, got.err
    assert "f03 already exists; use --force" in got.err and "Traceback" not in got.err
    assert (out / top / "f03").read_bytes() == b"mine"
    for i in (0, 1, 2, *range(4, 12)):
        assert (out / top / f"f{i:02d}").read_bytes() == (root / f"f{i:02d}").read_bytes()
    assert not [p for p in (out / top).iterdir() if p.name.endswith(".cofre-part")]

    forced = cluster.cli("get", "--prefix", f"{top}/", "-o", str(out), "--force")
    assert forced.code == 0, forced.err
    assert (out / top / "f03").read_bytes() == (root / "f03").read_bytes()
