"""Deleting, collecting, checking, the cluster's status, and every way a command can fail."""

from __future__ import annotations

import hashlib
import re
import socket
import uuid
from pathlib import Path
from typing import Any

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode

from ..helpers import eventually_sync


def _stored(c: Any) -> int:
    return sum(int(n["stored_bytes"]) for n in c.cli("status", "--json").json()["nodes"])


def test_rm_then_gc_frees_the_chunks(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE * 3)
    hashes = it.chunk_hashes(src, DEFAULT_CHUNK_SIZE)
    name = f"gc/{uuid.uuid4().hex}"
    assert cluster.cli("put", str(src), "--name", name).code == 0
    assert cluster.cli("put", str(src), "--name", name).code == 0  # version 2, same chunks
    # Two copies at least (more if placement picked other nodes for version 2).
    assert all(len(cluster.holders(h)) >= 2 for h in hashes)

    rm = cluster.cli("rm", name)
    assert rm.code == 0, rm.err
    assert "versions 1, 2" in rm.out
    assert name not in {f["name"] for f in cluster.cli("ls", "--versions", "--json").json()}
    gone = cluster.cli("get", name, "-o", str(tmp_path / "x"))
    assert gone.code == ExitCode.NOT_FOUND
    it.one_error_line(gone)

    gc = cluster.cli("gc", "--grace", "0", "--json")
    assert gc.code == 0, gc.err
    # 3 data chunks on 2 nodes each (the manifests add more).
    assert gc.json()["deleted_chunks"] >= 6
    assert gc.json()["freed_bytes"] >= 6 * DEFAULT_CHUNK_SIZE
    assert all(not cluster.holders(h) for h in hashes)
    human = cluster.cli("gc", "--grace", "0")
    assert human.code == 0
    assert human.out.startswith("deleted ")

    again = cluster.cli("rm", name)
    assert again.code == ExitCode.NOT_FOUND
    it.one_error_line(again)


def test_gc_frees_stored_bytes_in_status(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE * 2)
    name = f"gc-status/{uuid.uuid4().hex}"
    assert cluster.cli("put", str(src), "--name", name).code == 0
    assert cluster.cli("rm", name).code == 0
    holders = cluster.holders(it.chunk_hashes(src, DEFAULT_CHUNK_SIZE)[0])
    assert len(holders) == 2
    before = _status_once_probed(cluster)
    assert cluster.cli("gc", "--grace", "0").code == 0
    after = _status_once_probed(cluster)
    for node in holders:
        assert after[node] <= before[node] - DEFAULT_CHUNK_SIZE, (node, before, after)


def _status_once_probed(c: Any) -> dict[str, int]:
    """Stored bytes per node from `cofre status`, once the manager's probes caught up with
    what the nodes hold on disk (they lag by up to one probe interval)."""

    def status_and_disk() -> tuple[dict[str, int], dict[str, int]]:
        nodes = c.cli("status", "--json").json()["nodes"]
        status = {n["node_id"]: n["stored_bytes"] for n in nodes}
        return status, {node: _node_bytes(c, node) for node in status}

    status, _ = eventually_sync(
        status_and_disk,
        until=lambda got: got[0] == got[1],
        what="status to report the bytes on disk",
        timeout_s=30,
        poll_s=0.2,
    )
    return status


def _node_bytes(c: Any, node_id: str) -> int:
    return int(c.stored_bytes(node_id))


def test_status_reports_every_node(cluster: Any) -> None:
    status = cluster.cli("status", "--json")
    assert status.code == 0, status.err
    view = status.json()
    assert view["replication_factor"] == 2
    assert view["primary_keeps_copy"] is False
    nodes = sorted(view["nodes"], key=lambda n: n["node_id"])
    assert [n["node_id"] for n in nodes] == ["node-0", "node-1", "node-2", "node-3"]
    state_urls = {n["node_id"]: n["url"] for n in cluster.state()["nodes"]}
    for n in nodes:
        assert n["url"] == state_urls[n["node_id"]]
        assert n["ready"] is True
        assert n["free_bytes"] > 0
        assert n["stored_bytes"] >= 0
        assert n["latency_ms"] is not None and n["latency_ms"] >= 0
        assert n["score"] is not None and 0 < n["score"] <= 1
    human = cluster.cli("status")
    assert human.code == 0
    assert human.out.splitlines()[0].split() == [
        "NODE", "ADDRESS", "READY", "STORED", "FREE", "LATENCY_MS", "SCORE", "SCRUB",
    ]  # fmt: skip
    # Every node scrubs by default; a fresh cluster has read little of its first cycle yet.
    for line in human.out.splitlines()[1:5]:
        assert re.search(r"\d+% \(full (never|\d+[smhd] ago)\)$", line), line
    assert "4 of 4 nodes ready; replication factor 2" in human.out


def test_fsck_healthy_then_damaged(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE * 2)
    name = f"fsck/{uuid.uuid4().hex}"
    assert cluster.cli("put", str(src), "--name", name).code == 0

    report = cluster.cli("fsck", name, "--verify", "--json")
    assert report.code == 0, report.err
    data = report.json()
    assert data["healthy"] is True
    assert set(data["summary"]) >= {"files", "versions", "chunks", "ok", "missing", "corrupt"}
    [entry] = [f for f in data["files"] if f["name"] == name]
    assert entry["version"] == 1 and entry["healthy"] is True
    hashes = it.chunk_hashes(src, DEFAULT_CHUNK_SIZE)
    assert {c["hash"] for c in entry["chunks"]} >= set(hashes)
    for c in entry["chunks"]:
        assert c["status"] == "ok" and len(c["nodes"]) == 2
    assert "HEALTHY" in cluster.cli("fsck", name).out

    # Lose one copy of the first chunk and corrupt one copy of the second.
    lost_on = sorted(cluster.holders(hashes[0]))[0]
    cluster.lose_copy(lost_on, hashes[0])
    bad_on = sorted(cluster.holders(hashes[1]))[0]
    cluster.flip_byte(bad_on, hashes[1])

    damaged = cluster.cli("fsck", name, "--verify", "--json")
    assert damaged.code == ExitCode.FAILURE
    chunks = {c["hash"]: c for c in damaged.json()["files"][0]["chunks"]}
    assert chunks[hashes[0]]["status"] == "under_replicated"
    assert chunks[hashes[1]]["status"] in {"corrupt", "under_replicated"}
    assert bad_on in chunks[hashes[1]]["corrupt_on"]
    human = cluster.cli("fsck", name, "--verify")
    assert human.code == ExitCode.FAILURE
    assert "NOT HEALTHY" in human.out
    assert hashes[0][:16] in human.out

    # A restore still works: each chunk comes from its remaining intact copy.
    got = cluster.cli("get", name, "-o", str(tmp_path / "back"))
    assert got.code == 0, got.err
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    assert "cofre repair" in human.out

    # Repair copies both chunks back to two good copies, from the intact ones.
    repaired = cluster.cli("repair", "--verify", "--json")
    assert repaired.code == 0, repaired.err
    assert repaired.json()["copies_made"] >= 2 and repaired.json()["healthy"] is True
    healed = cluster.cli("fsck", name, "--verify", "--json")
    assert healed.code == 0, healed.out
    for c in healed.json()["files"][0]["chunks"]:
        assert c["status"] == "ok" and len(c["nodes"]) == 2
        assert len(cluster.holders(c["hash"])) == 2  # on disk too
    again = cluster.cli("repair")
    assert again.code == 0 and "0 copies made" in again.out and "HEALTHY" in again.out
    assert cluster.cli("rm", name).code == 0  # leave the shared cluster healthy


def test_where_lists_every_copy_and_why(cluster: Any, it: Any, tmp_path: Path) -> None:
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE + 10)
    name = f"where/{uuid.uuid4().hex}"
    assert cluster.cli("put", str(src), "--name", name).code == 0
    hashes = it.chunk_hashes(src, DEFAULT_CHUNK_SIZE)

    report = cluster.cli("where", name, "--json")
    assert report.code == 0, report.err
    data = report.json()
    assert [c["hash"] for c in data["chunks"]] == hashes
    for entry in data["chunks"]:
        # The copies the catalog records are the files on the nodes' disks.
        assert {c["node_id"] for c in entry["copies"]} == cluster.holders(entry["hash"])
        assert all(c["state"] == "ok" for c in entry["copies"])
        assert all(
            c["why"].startswith(f"placed by the upload of {name!r}") for c in entry["copies"]
        )

    human = cluster.cli("where", name)
    assert human.code == 0, human.err
    lines = human.out.splitlines()
    assert lines[0].startswith(f"{name} version 1: ") and lines[0].endswith("2 copies each")
    assert f"chunk 1/2 {hashes[0][:16]}" in human.out and "manifest " in human.out
    assert "why:" in lines and f"  [1] placed by the upload of {name!r}" in human.out

    # One copy gone from its disk: that copy shows missing, the exit code says so.
    lost_on = sorted(cluster.holders(hashes[0]))[0]
    cluster.lose_copy(lost_on, hashes[0])
    damaged = cluster.cli("where", name, "--json")
    assert damaged.code == ExitCode.FAILURE
    first = damaged.json()["chunks"][0]
    assert first["status"] == "under_replicated"
    assert {c["node_id"]: c["state"] for c in first["copies"]}[lost_on] == "missing"

    unknown = cluster.cli("where", f"{name}-nothing")
    assert unknown.code == ExitCode.NOT_FOUND
    assert "no live" in it.one_error_line(unknown)
    assert cluster.cli("rm", name).code == 0  # leave the shared cluster healthy


def test_wrong_token_is_refused(cluster: Any, it: Any, tmp_path: Path) -> None:
    env = dict(cluster.env, COFRE_TOKEN="not-the-token")
    for args in (["ls"], ["status"], ["put", str(it.random_file(tmp_path / "f", 10))]):
        result = cluster.cli(*args, env=env)
        assert result.code == ExitCode.UNAUTHORIZED, (args, result.err)
        assert "token" in it.one_error_line(result)
    flag = cluster.cli("ls", "--token", "also-wrong")
    assert flag.code == ExitCode.UNAUTHORIZED


def test_manager_unreachable(it: Any, tmp_path: Path) -> None:
    env = dict(it.base_env(), COFRE_MANAGER=f"https://127.0.0.1:{it.free_port()}", COFRE_TOKEN="t")
    result = it.run_cli(["ls"], env=env)
    assert result.code == ExitCode.UNAVAILABLE
    assert "cannot reach" in it.one_error_line(result)
    src = it.random_file(tmp_path / "f", 10)
    put = it.run_cli(["put", str(src)], env=env)
    assert put.code == ExitCode.UNAVAILABLE
    it.one_error_line(put)


def test_no_manager_configured(it: Any, tmp_path: Path) -> None:
    result = it.run_cli(["ls"], env=it.base_env(), cwd=tmp_path)
    assert result.code == ExitCode.USAGE
    assert "cofre local up" in it.one_error_line(result)


def test_state_file_of_local_up_is_found(cluster: Any, it: Any) -> None:
    env = dict(it.base_env(), COFRE_DATA_DIR=str(cluster.data_dir))
    result = it.run_cli(["status", "--json"], env=env)
    assert result.code == 0, result.err
    assert len(result.json()["nodes"]) == 4
    state = cluster.state()
    assert (cluster.data_dir / "state.json").stat().st_mode & 0o777 == 0o600
    assert (cluster.data_dir / "token").stat().st_mode & 0o777 == 0o600
    assert state["token"] == cluster.token
    assert set(state["pids"]) == {"manager", "node-0", "node-1", "node-2", "node-3"}


def test_port_in_use_is_one_clear_line(it: Any, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = it.run_cli(
            ["local", "up", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            env=it.base_env(),
            timeout=60,
        )
    assert result.code == ExitCode.USAGE
    assert f"port {port}" in it.one_error_line(result)
    assert result.out == ""


def test_hostile_names_are_only_names(cluster: Any, it: Any, tmp_path: Path) -> None:
    passwd = Path("/etc/passwd")
    before = hashlib.sha256(passwd.read_bytes()).hexdigest() if passwd.exists() else None
    tag = uuid.uuid4().hex[:8]
    names = [
        f"../../../../../../etc/passwd-{tag}",
        f"../../etc/passwd{tag}",
        f"two\nlines-{tag}",
        f"ünïcødé/名前-{tag}.txt",
        f"/abs/{tag}",
        f"sp ace\t{tag}",
    ]
    srcs = {}
    for i, name in enumerate(names):
        src = it.random_file(tmp_path / f"src{i}", 100 + i)
        srcs[name] = src
        put = cluster.cli("put", str(src), "--name", name, "--json")
        assert put.code == 0, (name, put.err)
        assert put.json()["results"][0]["name"] == name
    listed = {f["name"] for f in cluster.cli("ls", "--json").json()}
    assert set(names) <= listed
    human = cluster.cli("ls").out
    assert f"two\\nlines-{tag}" in human  # one row per name, control characters escaped

    restore = tmp_path / "restore"
    restore.mkdir()
    for i, name in enumerate(names):
        dest = restore / f"out{i}"
        got = cluster.cli("get", name, "-o", str(dest))
        assert got.code == 0, (name, got.err)
        assert dest.read_bytes() == srcs[name].read_bytes()
    # Without -o the last part of the name lands in the current directory, nowhere else.
    here = tmp_path / "here"
    here.mkdir()
    assert cluster.cli("get", names[1], cwd=here).code == 0
    assert [p.name for p in here.iterdir()] == [f"passwd{tag}"]
    # Many at once below a directory: names that would leave it are refused.
    refused = cluster.cli("get", "--prefix", "../", "-o", str(tmp_path / "tree"))
    assert refused.code == ExitCode.USAGE
    assert not (tmp_path / "etc").exists()
    assert not list(tmp_path.parent.glob(f"*{tag}*"))
    assert before is None or hashlib.sha256(passwd.read_bytes()).hexdigest() == before
    # The stores hold chunks named by hash only: chunk files, packs and their index.
    for node in cluster.node_dirs():
        for path in (cluster.data_dir / "nodes" / node).rglob("*"):
            name = path.name
            if path.is_file() and path.parent.name == "packs":
                assert name.startswith("index.sqlite") or (
                    name.endswith(".pack") and name[:-5].isdigit()
                ), path
            elif path.is_file() and "chunks" in path.parts:
                assert len(name) == 64 and all(ch in "0123456789abcdef" for ch in name), path
    for name in names:
        assert cluster.cli("rm", name).code == 0


def test_menu_backs_up_recovers_and_deletes(cluster: Any, it: Any, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    fname = f"menu-{uuid.uuid4().hex[:8]}.txt"
    src = it.random_file(folder / fname, 5000)
    it.random_file(folder / "zzz-other.txt", 10)  # the listing is sorted: ours is number 1

    backup = cluster.cli("menu", stdin="7\n1\n\n1\n4\n", cwd=folder)
    assert backup.code == 0, backup.err
    assert "1) Back up a file  2) Recover a file  3) Delete a file  4) Exit" in backup.out
    assert "Invalid choice '7'" in backup.out
    assert f"  1) {fname}" in backup.out
    assert f"Backed up {fname}  version 1" in backup.out

    names = sorted(f["name"] for f in cluster.cli("ls", "--json").json())
    number = names.index(fname) + 1
    dest = tmp_path / "recovered.txt"
    recover = cluster.cli("menu", stdin=f"2\nnope\n{number}\n{dest}\n4\n", cwd=tmp_path)
    assert recover.code == 0, recover.err
    assert "Invalid choice 'nope'" in recover.out
    assert dest.read_bytes() == src.read_bytes()

    delete = cluster.cli("menu", stdin=f"3\n{number}\n", cwd=tmp_path)  # then end of input
    assert delete.code == 0, delete.err
    assert f"Deleted {fname}" in delete.out
    assert fname not in {f["name"] for f in cluster.cli("ls", "--json").json()}


def test_second_local_up_on_a_running_data_dir_is_refused(cluster: Any, it: Any) -> None:
    result = it.run_cli(
        ["local", "up", "--data-dir", str(cluster.data_dir), "--port", str(it.free_port())],
        env=it.base_env(),
        timeout=60,
    )
    assert result.code == ExitCode.USAGE
    assert "already runs" in it.one_error_line(result)
    assert cluster.cli("status", "--json").code == 0  # the running one is untouched
