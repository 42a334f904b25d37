"""Many clients at once, a node dying mid-backup and coming back, and a cluster restarted on the
same data."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode

from ..helpers import eventually_sync

MiB = 1024 * 1024


def test_eight_clients_at_once(cluster: Any, it: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    shared = it.random_file(tmp_path / "shared", DEFAULT_CHUNK_SIZE * 2)
    srcs = {}
    for i in range(8):
        # Half unique content, half the same bytes under different names (dedup under load).
        src = shared if i % 2 else it.random_file(tmp_path / f"src{i}", 3 * MiB + i)
        srcs[f"many/{tag}/{i}"] = src
    procs = {
        name: subprocess.Popen(
            [*it.cofre_argv(), "put", str(src), "--name", name],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, src in srcs.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err.decode())
        assert out.decode().startswith(f"{name}  version 1")
    for name, src in srcs.items():
        dest = tmp_path / "back" / name.rsplit("/", 1)[1]
        dest.parent.mkdir(exist_ok=True)
        got = cluster.cli("get", name, "-o", str(dest))
        assert got.code == 0, got.err
        assert it.sha256_file(dest) == it.sha256_file(src)
    report = cluster.cli("fsck", "--json").json()
    mine = [f for f in report["files"] if f["name"].startswith(f"many/{tag}/")]
    assert len(mine) == 8 and all(f["healthy"] for f in mine)


def test_node_killed_during_put_then_restart_finds_everything(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "cluster"
    c = start_local(data_dir, nodes=4, replication_factor=2)
    early = it.random_file(tmp_path / "early", DEFAULT_CHUNK_SIZE + 123)
    assert c.cli("put", str(early), "--name", "early").code == 0

    big = it.random_file(tmp_path / "big", 160 * MiB)
    env = dict(c.env, COFRE_LOG_LEVEL="DEBUG")
    err_path = tmp_path / "put.err"
    with err_path.open("wb") as err:
        put = subprocess.Popen(
            [*it.cofre_argv(), "put", str(big), "--name", "big", "--parallelism", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )

    # Kill the primary as soon as chunks flow to it.
    def primary_sent_to() -> str | None:
        for line in err_path.read_text(errors="replace").splitlines():
            if "method=PUT" in line and "/v1/sessions/" in line:
                return c.node_of_netloc(line.split(" url=", 1)[1].split("/")[2])
        assert put.poll() is None, err_path.read_text()  # put ended before sending a chunk
        return None

    victim = eventually_sync(
        primary_sent_to, what="put to send a chunk to its primary", timeout_s=60, poll_s=0.01
    )
    pid = c.state()["pids"][victim]
    # Kept down long enough to see the cluster without it; then `local up` brings it back.
    down_for = 30
    kill = c.cli("local", "kill", victim, "--down-for", str(down_for), env=c.local_env)
    assert kill.code == 0, kill.err
    assert not it.process_running(pid)

    # The manager counts it not ready, and the cluster keeps taking backups on the others.
    ready = eventually_sync(
        lambda: {n["node_id"]: n["ready"] for n in c.cli("status", "--json").json()["nodes"]},
        until=lambda nodes: not nodes[victim],
        what=f"{victim} not ready",
        timeout_s=down_for,
    )
    assert sum(ready.values()) == 3
    code = put.wait(timeout=300)
    put_err = [
        line for line in err_path.read_text(errors="replace").splitlines()
        if not line.startswith("DEBUG ")
    ]  # fmt: skip
    assert "Traceback" not in err_path.read_text(errors="replace")
    if code != 0:
        assert code in {ExitCode.UNAVAILABLE, ExitCode.NOT_ENOUGH_NODES}, put_err
        assert len(put_err) == 1 and put_err[0].startswith("cofre: error: "), put_err
    after = it.random_file(tmp_path / "after", 3 * MiB)
    assert c.cli("put", str(after), "--name", "after").code == 0

    # `local up` says once that the node died and names its log, then restarts it: a new pid
    # in the state file, and the manager sees it ready again.
    assert c.proc.poll() is None
    said = (
        f"{victim} (pid {pid}) exited with signal SIGKILL; restarting it in {down_for} s"
        f"; kept down by `cofre local kill --down-for` (log: {data_dir / 'logs' / victim}.log)"
    )
    assert said in c.stderr_text()
    eventually_sync(
        lambda: {n["node_id"]: n["ready"] for n in c.cli("status", "--json").json()["nodes"]},
        until=lambda nodes: all(nodes.values()),
        what=f"{victim} ready again",
        timeout_s=down_for + 60,
    )
    new_pid = c.state()["pids"][victim]
    assert new_pid != pid and it.process_running(new_pid)
    assert c.state()["restarts"][victim] == 1
    assert f"{victim} restarted (pid {new_pid}, restart 1;" in c.stderr_text()
    assert c.stderr_text().count(f"{victim} (pid {pid}) exited") == 1
    assert c.stop() == 0
    assert not (data_dir / "state.json").exists()

    # The same data dir is the same cluster: token, nodes and every committed backup.
    token = c.token
    again = start_local(data_dir, nodes=4, replication_factor=2)
    assert again.token == token
    files = {f["name"]: f for f in again.cli("ls", "--json").json()}
    assert {"early", "after"} <= set(files) <= {"early", "after", "big"}
    report = again.cli("fsck", "--verify", "--json")
    for f in report.json()["files"]:
        assert all(ch["status"] != "missing" for ch in f["chunks"]), f
    assert report.code == 0, report.out
    got = again.cli("get", "early", "-o", str(tmp_path / "early.back"))
    assert got.code == 0, got.err
    assert (tmp_path / "early.back").read_bytes() == early.read_bytes()
    if "big" in files:
        assert again.cli("get", "big", "-o", str(tmp_path / "big.back")).code == 0
        assert it.sha256_file(tmp_path / "big.back") == it.sha256_file(big)
    assert again.stop() == 0


def test_children_follow_a_killed_local_up_and_a_restart_recovers(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "cluster"
    c = start_local(data_dir, nodes=3, replication_factor=2)
    src = it.random_file(tmp_path / "src", 5000)
    assert c.cli("put", str(src), "--name", "kept").code == 0
    pids = list(c.state()["pids"].values())

    c.proc.kill()  # no chance to clean up: SIGKILL
    c.proc.wait(timeout=30)
    eventually_sync(
        lambda: not any(it.process_running(p) for p in pids),
        what=f"the children {pids} to exit",
        timeout_s=30,
    )
    assert (data_dir / "state.json").exists()  # stale: its owner is gone
    stale = it.run_cli(["ls"], env=dict(it.base_env(), COFRE_DATA_DIR=str(data_dir)))
    assert stale.code == ExitCode.UNAVAILABLE
    assert "not running" in it.one_error_line(stale)

    again = start_local(data_dir, nodes=3, replication_factor=2)
    assert again.state()["pid"] == again.proc.pid
    got = again.cli("get", "kept", "-o", str(tmp_path / "back"))
    assert got.code == 0, got.err
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    assert again.stop() == 0


def test_local_down_stops_every_process_and_keeps_the_backups(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "cluster"
    env = dict(it.base_env(), COFRE_DATA_DIR=str(data_dir))
    c = start_local(data_dir, nodes=3, replication_factor=2)
    src = it.random_file(tmp_path / "src", 7000)
    assert c.cli("put", str(src), "--name", "kept").code == 0
    pids = list(c.state()["pids"].values())
    # An error answer: the manager closes that connection, leaving it in TIME_WAIT on its port.
    assert c.cli("where", "nothing").code == ExitCode.NOT_FOUND

    down = it.run_cli(["local", "down"], env=env)
    assert down.code == 0, down.err
    assert f"local cluster stopped (pid {c.proc.pid}" in down.err
    # `local down` returns once the whole cluster has exited, children first.
    assert c.proc.poll() == 0
    assert not any(it.process_running(p) for p in pids)
    assert not (data_dir / "state.json").exists()

    again = it.run_cli(["local", "down"], env=env)
    assert again.code == 0, again.err
    assert "no local cluster runs from" in again.err

    # At once on the same port: the last cluster's closed connections do not hold it.
    restarted = start_local(data_dir, nodes=3, replication_factor=2, port=c.port)
    got = restarted.cli("get", "kept", "-o", str(tmp_path / "back"))
    assert got.code == 0, got.err
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    assert it.run_cli(["local", "down", "--data-dir", str(data_dir)], env=it.base_env()).code == 0
    assert restarted.proc.wait(timeout=30) == 0


def test_local_down_clears_a_state_file_whose_owner_is_gone(it: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    data_dir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (data_dir / "state.json").write_text(f'{{"pid": {dead.pid}, "manager_url": "http://x"}}')
    down = it.run_cli(["local", "down", "--data-dir", str(data_dir)], env=it.base_env())
    assert down.code == 0, down.err
    assert "no local cluster runs from" in down.err
    assert not (data_dir / "state.json").exists()
    bad = it.run_cli(["local", "down", "--timeout", "0"], env=it.base_env())
    assert bad.code == ExitCode.USAGE
    assert "must be more than 0" in bad.err and "Traceback" not in bad.err
