import argparse
import os
import subprocess
import sys
from typing import Any

import pytest

from cofre.config import (
    ClientConfig,
    ConfigError,
    DrainConfig,
    ManagerConfig,
    NodeConfig,
    RepairConfig,
    add_flags,
    env_name,
    flag_name,
    given_flags,
    leaves,
    load,
)
from cofre.operator.settings import OperatorConfig


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, ManagerConfig)
    return parser.parse_args(list(argv))


def test_names_follow_the_field_path() -> None:
    assert env_name(("placement", "replication_factor")) == "COFRE_PLACEMENT_REPLICATION_FACTOR"
    assert flag_name(("placement", "replication_factor")) == "--placement-replication-factor"
    assert env_name(("token",)) == "COFRE_TOKEN"


def test_defaults_then_env_then_flags() -> None:
    env = {"COFRE_TOKEN": "t", "COFRE_PORT": "9000", "COFRE_PLACEMENT_REPLICATION_FACTOR": "3"}
    config = load(ManagerConfig, env=env, args=_args("--placement-replication-factor", "4"))
    assert config.port == 9000  # env over default
    assert config.placement.replication_factor == 4  # flag over env
    assert config.placement.latency_weight == 0.5  # default


def test_typed_values() -> None:
    env = {
        "COFRE_TOKEN": "t",
        "COFRE_PLACEMENT_PRIMARY_KEEPS_COPY": "true",
        "COFRE_DISCOVERY_STATIC_NODES": "a=http://x:1, b=http://y:2",
        "COFRE_DATA_DIR": "/tmp/m",
    }
    config = load(ManagerConfig, env=env)
    assert config.placement.primary_keeps_copy is True
    assert config.discovery.static_nodes == ("a=http://x:1", "b=http://y:2")
    assert str(config.data_dir) == "/tmp/m"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "COFRE_TOKEN"),
        ({"COFRE_TOKEN": "t", "COFRE_PORT": "eighty"}, "COFRE_PORT"),
        ({"COFRE_TOKEN": "t", "COFRE_PLACEMENT_LATENCY_WEIGHT": "1.5"}, "LATENCY_WEIGHT"),
        ({"COFRE_TOKEN": "t", "COFRE_PLACEMENT_REPLICATION_FACTOR": "0"}, "REPLICATION"),
        ({"COFRE_TOKEN": "t", "COFRE_DISCOVERY_BACKEND": "dns"}, "BACKEND"),
        ({"COFRE_TOKEN": "t", "COFRE_PLACEMENT_PRIMARY_KEEPS_COPY": "maybe"}, "KEEPS_COPY"),
        ({"COFRE_TOKEN": "t", "COFRE_PROBE_INTERVAL_S": "inf"}, "PROBE_INTERVAL_S"),
        ({"COFRE_TOKEN": "t", "COFRE_GC_GRACE_S": "nan"}, "GC_GRACE_S"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load(ManagerConfig, env=env)


def test_node_config_from_flags() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, NodeConfig)
    args = parser.parse_args(["--node-id", "n7", "--token", "t", "--port", "0"])
    config = load(NodeConfig, env={}, args=args)
    assert (config.node_id, config.port, config.token) == ("n7", 0, "t")


# --- field docs, flags and help ---------------------------------------------------------------


CONFIGS = [ManagerConfig, NodeConfig, ClientConfig, OperatorConfig]


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_setting_has_help_and_every_number_a_unit(cls: type[Any]) -> None:
    for leaf in leaves(cls):
        meta = leaf.spec.metadata
        assert meta.get("help"), leaf.key
        if leaf.hint in (int, float):
            assert meta.get("unit") or meta.get("metavar") == "PORT", leaf.key


def test_help_of_a_flag_says_what_unit_default_and_env() -> None:
    parser = argparse.ArgumentParser(prog="x")
    add_flags(parser, ManagerConfig)
    text = " ".join(parser.format_help().split())
    assert (
        "--repair-after-s SECONDS a node holding chunks may be unready or gone this long before "
        "its chunks are copied elsewhere"
    ) in text
    assert "(unit: seconds; default: 300.0; env COFRE_REPAIR_AFTER_S)" in text
    assert "--placement-min-free-bytes BYTES" in text


def test_a_renamed_setting_keeps_its_names_and_takes_its_aliases() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, ClientConfig)
    leaf = next(x for x in leaves(ClientConfig) if x.key == "manager_url")
    assert (leaf.env, leaf.flag) == ("COFRE_MANAGER", "--manager")
    assert load(ClientConfig, env={"COFRE_MANAGER_URL": "http://a"}).manager_url == "http://a"
    both = {"COFRE_MANAGER_URL": "http://a", "COFRE_MANAGER": "http://b"}
    assert load(ClientConfig, env=both).manager_url == "http://b"
    args = parser.parse_args(["--manager-url", "http://c"])
    assert load(ClientConfig, env=both, args=args).manager_url == "http://c"


def test_log_level_is_checked_and_normalised() -> None:
    assert load(NodeConfig, env={"COFRE_TOKEN": "t", "COFRE_LOG_LEVEL": "debug"}).log_level == (
        "DEBUG"
    )
    with pytest.raises(ConfigError, match=r"COFRE_LOG_LEVEL: cannot use 'loud' \(one of DEBUG"):
        load(NodeConfig, env={"COFRE_TOKEN": "t", "COFRE_LOG_LEVEL": "loud"})


def test_empty_variables_are_unset() -> None:
    env = {"COFRE_TOKEN": "t", "COFRE_PORT": "", "COFRE_LOG_LEVEL": " "}
    config = load(ManagerConfig, env=env)
    assert (config.port, config.log_level) == (8080, "INFO")


def test_tunables_of_the_loops_are_settings() -> None:
    env = {
        "COFRE_TOKEN": "t",
        "COFRE_REPAIR_AFTER_S": "30",
        "COFRE_REPAIR_LOST_SCAN_S": "7",
        "COFRE_REPAIR_PARALLEL_COPIES": "8",
        "COFRE_DRAIN_PASS_INTERVAL_S": "0.5",
    }
    config = load(ManagerConfig, env=env)
    assert config.repair == RepairConfig(after_s=30.0, lost_scan_s=7.0, parallel_copies=8)
    assert config.drain == DrainConfig(pass_interval_s=0.5)
    node = load(NodeConfig, env={"COFRE_TOKEN": "t", "COFRE_RELAY_SWEEP_INTERVAL_S": "2"})
    assert node.relay_sweep_interval_s == 2.0
    with pytest.raises(ConfigError, match="COFRE_DRAIN_PASS_INTERVAL_S"):
        load(ManagerConfig, env={"COFRE_TOKEN": "t", "COFRE_DRAIN_PASS_INTERVAL_S": "0"})
    with pytest.raises(ConfigError, match="COFRE_REPAIR_AFTER_S"):
        load(ManagerConfig, env={"COFRE_TOKEN": "t", "COFRE_REPAIR_AFTER_S": "-1"})


def test_given_flags_pass_on_only_what_was_set_without_the_prefix() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, NodeConfig, prefix="node", skip=("port", "node_id"))
    args = parser.parse_args(["--node-reserve-bytes", "5", "--node-log-level", "debug"])
    assert given_flags(args, NodeConfig, prefix="node") == [
        "--log-level",
        "debug",
        "--reserve-bytes",
        "5",
    ]
    config = load(NodeConfig, env={"COFRE_TOKEN": "t"}, args=args, prefix="node")
    assert (config.reserve_bytes, config.log_level) == (5, "DEBUG")
    with pytest.raises(SystemExit):
        parser.parse_args(["--node-port", "1"])  # skipped: not a flag


# --- the services' entry points -------------------------------------------------------------


def _run(module: str, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manager_help_shows_each_flags_help_and_unit() -> None:
    proc = _run("cofre.manager", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "--probe-interval-s SECONDS time between probes of each node" in text
    assert "unit: seconds; default: 2.0; env COFRE_PROBE_INTERVAL_S" in text
    assert "--placement-min-free-bytes BYTES" in text and "unit: bytes" in text


@pytest.mark.parametrize("module", ["cofre.manager", "cofre.operator"])
def test_bad_log_level_is_one_line_and_exit_2(module: str) -> None:
    proc = _run(module, COFRE_LOG_LEVEL="loud", COFRE_TOKEN="t")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "COFRE_LOG_LEVEL" in proc.stderr and "'loud'" in proc.stderr


def test_operator_help_shows_each_flags_help(capsys: pytest.CaptureFixture[str]) -> None:
    from cofre.operator.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--namespaces LIST namespaces to watch, comma-separated" in text
    assert "env COFRE_NAMESPACES" in text


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"COFRE_PACK_COMPACT_GARBAGE_FRACTION": "1.5"}, "COFRE_PACK_COMPACT_GARBAGE_FRACTION"),
        ({"COFRE_PACK_COMPACT_GARBAGE_FRACTION": "0"}, "COFRE_PACK_COMPACT_GARBAGE_FRACTION"),
        ({"COFRE_PACK_TARGET_BYTES": "0"}, "COFRE_PACK_TARGET_BYTES"),
        ({"COFRE_PACK_MAX_CHUNK_BYTES": "-1"}, "COFRE_PACK_MAX_CHUNK_BYTES"),
    ],
)
def test_bad_pack_settings_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load(NodeConfig, env={"COFRE_TOKEN": "t", **env})
    assert load(NodeConfig, env={"COFRE_TOKEN": "t"}).pack.compact_garbage_fraction == 0.3
