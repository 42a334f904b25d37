"""What `cofre local up` keeps in its data dir so that a restart is the same cluster."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from cofre.cli import localstate
from cofre.cli.local import plan
from cofre.cli.localstate import load_node_ports, load_or_create_token

from ...helpers import eventually_sync


def _args(nodes: int = 3, port: int = 18080, keeps: bool = False) -> argparse.Namespace:
    return argparse.Namespace(
        nodes=nodes, port=port, replication_factor=2, primary_keeps_copy=keeps
    )


def test_token_is_generated_once_and_private(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    assert len(token) >= 32
    assert load_or_create_token(tmp_path) == token
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600


def test_plan_keeps_node_ids_dirs_and_ports(tmp_path: Path) -> None:
    first = plan(_args(), tmp_path)
    second = plan(_args(), tmp_path)
    assert [c.role for c in first] == ["node-0", "node-1", "node-2", "manager"]
    assert [(c.role, c.url, c.data_dir) for c in first] == [
        (c.role, c.url, c.data_dir) for c in second
    ]
    assert first[0].data_dir == tmp_path / "nodes" / "node-0"
    assert set(load_node_ports(tmp_path)) == {"node-0", "node-1", "node-2"}
    ports = [int(c.url.rsplit(":", 1)[1]) for c in first[:-1]]
    assert len(set(ports)) == 3 and 18080 not in ports


def test_manager_gets_the_nodes_and_placement_flags(tmp_path: Path) -> None:
    children = plan(_args(nodes=2, keeps=True), tmp_path)
    manager = children[-1]
    argv = manager.argv
    assert argv[1:3] == ["-m", "cofre.manager"]
    static = argv[argv.index("--discovery-static-nodes") + 1]
    assert static == ",".join(f"{c.role}={c.url}" for c in children[:-1])
    assert argv[argv.index("--placement-replication-factor") + 1] == "2"
    assert argv[argv.index("--placement-primary-keeps-copy") + 1] == "true"
    assert argv[argv.index("--port") + 1] == "18080"
    assert manager.url == "http://127.0.0.1:18080"
    # The token travels in the environment, never in argv (visible to every user via ps).
    assert all("--token" not in c.argv for c in children)


def test_an_exited_child_not_yet_reaped_is_not_running() -> None:
    child = subprocess.Popen(["true"])
    # Exited but not reaped (no wait yet): a zombie, which `kill -0` still finds.
    eventually_sync(
        lambda: not localstate.pid_running(child.pid),
        what=f"pid {child.pid} to exit",
        timeout_s=10,
        poll_s=0.01,
    )
    assert localstate.pid_alive(child.pid)
    child.wait()
    assert not localstate.pid_alive(child.pid)
    assert localstate.pid_running(os.getpid())
