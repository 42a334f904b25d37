"""What `cofre local up` keeps in its data dir so that a restart is the same cluster."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from cofre.cli import localstate
from cofre.cli.exitcodes import UsageError
from cofre.cli.local import Backoff, Child, Supervisor, child_env, manager_config, plan
from cofre.cli.localstate import Hold, load_node_ports, load_or_create_token, take_hold, write_hold
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
    assert manager.url == "https://127.0.0.1:18080"
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap_and_starts_over_after_a_stable_run() -> None:
    clock = FakeClock()
    backoff = Backoff(first_s=1.0, cap_s=30.0, stable_s=60.0)
    delays = []
    for _ in range(8):
        backoff.started(clock())
        clock.now += 0.5  # dies at once, every time
        delay = backoff.exited(clock())
        delays.append(delay)
        clock.now += delay
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    # Up for less than stable_s: still backing off.
    backoff.started(clock())
    clock.now += 59.9
    assert backoff.exited(clock()) == 30.0
    # Up for stable_s: the next exit is a first one again.
    backoff.started(clock())
    clock.now += 60.0
    assert backoff.exited(clock()) == 1.0
    backoff.started(clock())
    clock.now += 1.0
    assert backoff.exited(clock()) == 2.0


def test_backoff_stays_at_the_cap_however_many_exits() -> None:
    backoff = Backoff(first_s=1.0, cap_s=30.0)
    backoff.started(0.0)
    assert [backoff.exited(0.0) for _ in range(5000)][-1] == 30.0


def _sleeper(role: str, tmp_path: Path) -> Child:
    return Child(role=role, argv=["sleep", "600"], log_path=tmp_path / f"{role}.log")


def _until_exited(child: Child) -> None:
    assert child.proc is not None
    proc = child.proc
    eventually_sync(
        lambda: not localstate.pid_running(proc.pid), what=f"{child.role} to exit", timeout_s=10
    )


def test_supervisor_restarts_an_exited_child_after_its_backoff(tmp_path: Path) -> None:
    """Real processes, a fake clock: the restart waits for the clock, not for wall time."""
    clock = FakeClock()
    said: list[str] = []
    children = [_sleeper("node-0", tmp_path), _sleeper("node-1", tmp_path)]
    sup = Supervisor(children, env=dict(os.environ), data_dir=tmp_path, clock=clock,
                     say=said.append)  # fmt: skip
    try:
        for child in children:
            sup.start(child)
        assert not sup.check()
        first = children[1].pid
        os.kill(first, signal.SIGKILL)
        _until_exited(children[1])
        assert sup.check()  # noticed: the state file is to be rewritten (pid 0 now)
        assert children[1].current_pid == 0 and children[0].current_pid == children[0].pid
        assert said == [
            f"node-1 (pid {first}) exited with signal SIGKILL; restarting it in 1 s "
            f"(log: {tmp_path / 'node-1.log'})"
        ]
        clock.now += 0.9
        assert not sup.check() and children[1].current_pid == 0
        clock.now += 0.1
        assert sup.check()
        second = children[1].current_pid
        assert second not in (0, first) and localstate.pid_running(second)
        assert children[1].restarts == 1 and children[0].restarts == 0
        assert said[-1].startswith(f"node-1 restarted (pid {second}, restart 1;")
        # Dies again at once: twice the delay.
        os.kill(second, signal.SIGTERM)
        _until_exited(children[1])
        assert sup.check()
        assert "exited with signal SIGTERM; restarting it in 2 s" in said[-1]
    finally:
        for child in children:
            if child.proc is not None:
                child.proc.kill()
                child.proc.wait()


def test_a_hold_replaces_the_backoff_once_and_only_for_its_pid(tmp_path: Path) -> None:
    clock = FakeClock()
    said: list[str] = []
    child = _sleeper("manager", tmp_path)
    sup = Supervisor([child], env=dict(os.environ), data_dir=tmp_path, clock=clock,
                     say=said.append)  # fmt: skip
    try:
        sup.start(child)
        write_hold(tmp_path, "manager", Hold(pid=child.pid, down_for_s=5.0))
        os.kill(child.pid, signal.SIGKILL)
        _until_exited(child)
        assert sup.check()
        assert "restarting it in 5 s; kept down by `cofre local kill --down-for`" in said[-1]
        assert not (tmp_path / "holds" / "manager.json").exists()
        clock.now += 4.9
        assert not sup.check() and child.current_pid == 0
        clock.now += 0.1
        assert sup.check() and child.current_pid
        # A held kill is no crash: the next plain exit still waits the first delay.
        os.kill(child.pid, signal.SIGKILL)
        _until_exited(child)
        assert sup.check()
        assert "restarting it in 1 s (log:" in said[-1]
    finally:
        if child.proc is not None:
            child.proc.kill()
            child.proc.wait()
    # A hold for some other pid (one never killed) is dropped, not applied.
    write_hold(tmp_path, "node-0", Hold(pid=12345, down_for_s=9.0))
    assert take_hold(tmp_path, "node-0", 999) is None
    assert take_hold(tmp_path, "node-0", 12345) is None  # gone with the first read


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "86401", "soon"])
def test_kill_down_for_must_be_a_sane_number_of_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["local", "kill", "node-0", "--down-for", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--down-for" in err and "Traceback" not in err
