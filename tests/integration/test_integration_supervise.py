"""`cofre local up` supervises its children: a node or the manager that dies is restarted (new
pid in the state file, ready again), `cofre local kill` tries a failure on purpose, and
`cofre local down` still stops everything, children waiting to be restarted included."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from cofre.cli.exitcodes import ExitCode

from ..helpers import eventually_sync

# Seconds a restarted child may take to be seen ready: its backoff (1 s at first), its start
# (about a second, more on a busy machine) and the manager's probes (every second).
BACK_TIMEOUT_S = 60.0


def ready_nodes(c: Any) -> dict[str, bool]:
    status = c.cli("status", "--json")
    assert status.code == 0, status.err
    return {n["node_id"]: n["ready"] for n in status.json()["nodes"]}


@pytest.fixture(scope="module")
def sup(it: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A cluster of its own: the tests here kill its children."""
    c = it.start_cluster(tmp_path_factory.mktemp("supervise") / "local", nodes=3)
    try:
        yield c
    finally:
        code = c.stop()
    assert code == 0, c.stderr_text()


def test_a_crashed_node_is_restarted_and_ready_again(sup: Any, it: Any) -> None:
    pid = sup.state()["pids"]["node-2"]
    os.kill(pid, signal.SIGKILL)  # a crash, not asked for through `local kill`
    new_pid = eventually_sync(
        lambda: sup.state()["pids"]["node-2"],
        until=lambda p: p not in (0, pid),
        what="node-2's new pid in the state file",
        timeout_s=BACK_TIMEOUT_S,
    )
    assert it.process_running(new_pid)
    assert sup.state()["nodes"][2]["pid"] == new_pid
    log_path = sup.data_dir / "logs" / "node-2.log"
    err = sup.stderr_text()
    assert (
        f"node-2 (pid {pid}) exited with signal SIGKILL; restarting it in 1 s (log: {log_path})"
        in err
    )
    assert f"node-2 restarted (pid {new_pid}, restart " in err
    eventually_sync(
        lambda: ready_nodes(sup),
        until=lambda nodes: all(nodes.values()) and len(nodes) == 3,
        what="node-2 ready again",
        timeout_s=BACK_TIMEOUT_S,
    )
    assert sup.proc.poll() is None


def test_local_kill_down_for_keeps_a_node_down_then_it_comes_back(sup: Any, it: Any) -> None:
    eventually_sync(lambda: ready_nodes(sup), until=lambda n: all(n.values()), what="all ready")
    pid = sup.state()["pids"]["node-1"]
    kill = sup.cli("local", "kill", "node-1", "--down-for", "5", env=sup.local_env)
    assert kill.code == 0, kill.err
    assert f"killed node-1 (pid {pid}); `cofre local up` restarts it in 5 s" in kill.err
    assert not it.process_running(pid)
    # Down: 0 in the state file, not ready on `cofre status`.
    eventually_sync(
        lambda: sup.state()["pids"]["node-1"] == 0, what="node-1 down in the state file"
    )
    down = eventually_sync(
        lambda: ready_nodes(sup),
        until=lambda n: not n["node-1"],
        what="node-1 not ready",
        timeout_s=10,
    )
    assert down == {"node-0": True, "node-1": False, "node-2": True}
    eventually_sync(
        lambda: ready_nodes(sup),
        until=lambda n: all(n.values()),
        what="node-1 ready again",
        timeout_s=BACK_TIMEOUT_S,
    )
    new_pid = sup.state()["pids"]["node-1"]
    assert new_pid not in (0, pid) and it.process_running(new_pid)
    assert "restarting it in 5 s; kept down by `cofre local kill --down-for`" in sup.stderr_text()


def test_a_killed_manager_is_restarted_with_every_backup(sup: Any, it: Any, tmp_path: Path) -> None:
    names = [f"before-manager-kill/{i}" for i in range(3)]
    for i, name in enumerate(names):
        src = it.random_file(tmp_path / f"src{i}", 1000 + i)
        assert sup.cli("put", str(src), "--name", name).code == 0
    listed = sup.cli("ls", "--json").json()
    pid = sup.state()["pids"]["manager"]
    nodes = {r: p for r, p in sup.state()["pids"].items() if r != "manager"}

    kill = sup.cli("local", "kill", "manager", env=sup.local_env)
    assert kill.code == 0, kill.err
    assert "restarts it after the usual backoff" in kill.err
    ls = eventually_sync(
        lambda: sup.cli("ls", "--json"),
        until=lambda r: r.code == 0,
        what="`cofre ls` to work again",
        timeout_s=BACK_TIMEOUT_S,
    )
    assert ls.json() == listed
    assert set(names) <= {f["name"] for f in ls.json()}
    new_pid = sup.state()["pids"]["manager"]
    assert new_pid != pid and it.process_running(new_pid)
    # The nodes were left alone.
    assert {r: p for r, p in sup.state()["pids"].items() if r != "manager"} == nodes
    assert f"manager (pid {pid}) exited with signal SIGKILL; restarting it in" in (
        sup.stderr_text()
    )
    got = sup.cli("get", names[0], "-o", str(tmp_path / "back"))
    assert got.code == 0, got.err
    assert (tmp_path / "back").read_bytes() == (tmp_path / "src0").read_bytes()


def test_local_kill_refuses_what_it_cannot_kill(sup: Any, it: Any, tmp_path: Path) -> None:
    unknown = sup.cli("local", "kill", "node-9", env=sup.local_env)
    assert unknown.code == ExitCode.USAGE
    assert "one of manager, node-0, node-1, node-2" in it.one_error_line(unknown)
    none = it.run_cli(["local", "kill", "node-0", "--data-dir", str(tmp_path)], env=it.base_env())
    assert none.code == ExitCode.UNAVAILABLE
    assert "no local cluster runs from" in it.one_error_line(none)
    bad = sup.cli("local", "kill", "node-0", "--down-for", "-3", env=sup.local_env)
    assert bad.code == ExitCode.USAGE and "Traceback" not in bad.err
    assert sup.proc.poll() is None


def test_local_down_stops_children_waiting_to_be_restarted(start_local: Any, it: Any) -> None:
    c = start_local(nodes=2, replication_factor=1)
    pids = dict(c.state()["pids"])
    kill = c.cli("local", "kill", "node-0", "--down-for", "600", env=c.local_env)
    assert kill.code == 0, kill.err
    eventually_sync(
        lambda: c.state()["pids"]["node-0"] == 0,
        what="node-0 down in the state file",
        timeout_s=10,
    )
    down = it.run_cli(["local", "down", "--timeout", "30"], env=c.local_env)
    assert down.code == 0, down.err
    assert c.proc.wait(timeout=30) == 0
    assert not any(it.process_running(p) for p in pids.values())
    assert "node-0 restarted" not in c.stderr_text()
    assert not (c.data_dir / "state.json").exists()
    # Nothing left behind that would hold a child of the next cluster down.
    assert not list((c.data_dir / "holds").glob("*.json"))
