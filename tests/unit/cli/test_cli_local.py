"""What `cofre local up` keeps in its data dir so that a restart is the same cluster."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from cofre.cli import localstate
from cofre.cli.exitcodes import UsageError
from cofre.cli.local import Child, child_env, manager_config, plan
from cofre.cli.localstate import load_node_ports, load_or_create_token
from cofre.cli.main import build_parser
from cofre.config import PlacementConfig, RepairConfig, leaves

from ...helpers import eventually_sync


def _args(nodes: int = 3, port: int = 18080, keeps: bool = False, *more: str) -> argparse.Namespace:
    argv = ["local", "up", "--nodes", str(nodes), "--port", str(port), *more]
    return build_parser().parse_args([*argv, "--primary-keeps-copy"] if keeps else argv)


def _plan(
    args: argparse.Namespace, data_dir: Path, env: Mapping[str, str] | None = None
) -> list[Child]:
    return plan(args, data_dir, manager_config(args, data_dir, env=env or {}, token="t"))


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_token_is_generated_once_and_private(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    assert len(token) >= 32
    assert load_or_create_token(tmp_path) == token
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600


def test_plan_keeps_node_ids_dirs_and_ports(tmp_path: Path) -> None:
    first = _plan(_args(), tmp_path)
    second = _plan(_args(), tmp_path)
    assert [c.role for c in first] == ["node-0", "node-1", "node-2", "manager"]
    assert [(c.role, c.url, c.data_dir) for c in first] == [
        (c.role, c.url, c.data_dir) for c in second
    ]
    assert first[0].data_dir == tmp_path / "nodes" / "node-0"
    assert set(load_node_ports(tmp_path)) == {"node-0", "node-1", "node-2"}
    ports = [int(c.url.rsplit(":", 1)[1]) for c in first[:-1]]
    assert len(set(ports)) == 3 and 18080 not in ports


def test_manager_gets_the_nodes_and_placement_flags(tmp_path: Path) -> None:
    children = _plan(_args(2, 18080, True, "--replication-factor", "2"), tmp_path)
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


def test_manager_and_node_flags_come_from_config_and_are_passed_on(tmp_path: Path) -> None:
    args = _args(
        2,
        18080,
        False,
        "--placement-replication-factor", "3",
        "--repair-after-s", "30",
        "--node-reserve-bytes", "1000",
        "--node-relay-sweep-interval-s", "5",
    )  # fmt: skip
    config = manager_config(args, tmp_path, env={}, token="t")
    assert config.placement.replication_factor == 3
    assert config.repair.after_s == 30.0
    children = plan(args, tmp_path, config)
    manager = children[-1].argv
    assert _flag(manager, "--placement-replication-factor") == "3"
    assert _flag(manager, "--repair-after-s") == "30"
    assert "--reserve-bytes" not in manager
    for node in children[:-1]:
        assert node.argv[1:3] == ["-m", "cofre.storage_node"]
        assert _flag(node.argv, "--reserve-bytes") == "1000"
        assert _flag(node.argv, "--relay-sweep-interval-s") == "5"
        assert "--placement-replication-factor" not in node.argv


def test_unset_settings_are_left_to_the_childrens_environment(tmp_path: Path) -> None:
    args = _args()
    env = {"COFRE_PLACEMENT_REPLICATION_FACTOR": "3"}
    config = manager_config(args, tmp_path, env=env, token="t")
    assert config.placement.replication_factor == 3
    argv = plan(args, tmp_path, config)[-1].argv
    # Not in argv: the manager reads it from the environment it inherits, like local up did.
    assert "--placement-replication-factor" not in argv
    assert child_env(env, "t")["COFRE_PLACEMENT_REPLICATION_FACTOR"] == "3"
    # Local up's own defaults yield to the user's environment.
    assert child_env({}, "t")["COFRE_PROBE_INTERVAL_S"] == "1.0"
    assert child_env({"COFRE_PROBE_INTERVAL_S": "3"}, "t")["COFRE_PROBE_INTERVAL_S"] == "3"
    assert child_env({"COFRE_TOKEN": "other"}, "t")["COFRE_TOKEN"] == "t"


def test_defaults_are_the_managers(tmp_path: Path) -> None:
    args = build_parser().parse_args(["local", "up"])
    assert args.nodes == 4
    config = manager_config(args, tmp_path, env={}, token="t")
    assert config.port == 8080
    assert config.placement == PlacementConfig()
    assert config.repair == RepairConfig()
    assert config.data_dir == tmp_path / "manager"
    assert config.discovery.backend == "static"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--placement-replication-factor", "0"], "REPLICATION_FACTOR"),
        (["--replication-factor", "many"], "--placement-replication-factor"),
        (["--node-replica-timeout-s", "0"], "REPLICA_TIMEOUT_S"),
        (["--port", "99999"], "--port"),
    ],
)
def test_bad_manager_or_node_settings_are_usage_errors(
    argv: list[str], needle: str, tmp_path: Path
) -> None:
    args = build_parser().parse_args(["local", "up", *argv])
    with pytest.raises(UsageError, match=needle):
        manager_config(args, tmp_path, env={}, token="t")


def test_help_of_local_up_is_the_managers_and_nodes_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", "up", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    factor = next(x for x in leaves(PlacementConfig) if x.key == "replication_factor")
    assert " ".join(str(factor.spec.metadata["help"]).split()) in out
    assert "--placement-replication-factor COPIES" in out
    assert "--node-reserve-bytes BYTES" in out
    assert "COFRE_RESERVE_BYTES" in out
