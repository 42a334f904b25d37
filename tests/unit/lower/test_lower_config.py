import argparse

import pytest

from cofre.config import (
    ConfigError,
    ManagerConfig,
    NodeConfig,
    add_flags,
    env_name,
    flag_name,
    load,
)


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
