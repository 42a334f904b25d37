"""Where the copies land, observed on disk, and who the client talked to."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode


def _put_observed(c: Any, it: Any, src: Path, name: str) -> tuple[str, set[str]]:
    """Put with every request logged; -> (primary node id, hosts the CLI talked to)."""
    env = dict(c.env, COFRE_LOG_LEVEL="DEBUG")
    put = c.cli("put", str(src), "--name", name, env=env)
    assert put.code == 0, put.err
    hosts = it.request_hosts(put.err)
    manager = c.url.split("//", 1)[1]
    assert manager in hosts
    others = hosts - {manager}
    assert len(others) == 1, hosts
    return c.node_of_netloc(others.pop()), hosts


def test_primary_relays_to_f_replicas_and_keeps_nothing(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE * 5 // 2)
    hashes = it.chunk_hashes(src, DEFAULT_CHUNK_SIZE)
    primary, hosts = _put_observed(cluster, it, src, f"relay/{uuid.uuid4().hex}")

    # Transparency: the client reached exactly the manager and one node.
    assert len(hosts) == 2
    for chunk_hash in hashes:
        holders = cluster.holders(chunk_hash)
        assert len(holders) == 2, (chunk_hash, holders)  # replication factor 2
        assert primary not in holders
    fsck = cluster.cli("fsck", "--json").json()
    assert fsck["summary"]["under_replicated"] == 0


def test_primary_keeps_one_of_the_copies_when_asked(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    c = start_local(nodes=4, replication_factor=2, primary_keeps_copy=True)
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE * 2 + 1)
    primary, _ = _put_observed(c, it, src, "keeps/copy")
    status = c.cli("status", "--json").json()
    assert status["primary_keeps_copy"] is True
    assert status["replication_factor"] == 2
    for chunk_hash in it.chunk_hashes(src, DEFAULT_CHUNK_SIZE):
        holders = c.holders(chunk_hash)
        assert len(holders) == 2, (chunk_hash, holders)
        assert primary in holders
    assert c.cli("get", "keeps/copy", "-o", str(tmp_path / "back")).code == 0
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    assert c.stop() == 0


def test_too_few_nodes_for_the_replication_factor(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    # Factor 2 without primaryKeepsCopy needs 3 nodes: the primary and two replicas.
    c = start_local(nodes=2, replication_factor=2)
    src = it.random_file(tmp_path / "src", 1000)
    put = c.cli("put", str(src), "--name", "too/few")
    assert put.code == ExitCode.NOT_ENOUGH_NODES
    it.one_error_line(put)
    assert c.cli("ls", "--json").json() == []
    assert all(not files for files in c.chunk_files().values())
    # Ctrl-C stops it as cleanly as SIGTERM, children included.
    pids = list(c.state()["pids"].values())
    c.proc.send_signal(signal.SIGINT)
    assert c.proc.wait(timeout=60) == 0
    assert "SIGINT: stopping the local cluster" in c.stderr_text()
    assert not (c.data_dir / "state.json").exists()
    for pid in pids:
        assert not it.process_running(pid)
