"""Where the CLI finds its manager and token: flag, then environment, then local state file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cofre.cli.context import resolve
from cofre.cli.exitcodes import UsageError
from cofre.cli.localstate import default_data_dir, write_state
from cofre.errors import Unavailable


def _state(tmp_path: Path, pid: int | None = None) -> Path:
    write_state(
        tmp_path,
        {
            "manager_url": "http://127.0.0.1:7000",
            "token": "from-state",
            "pid": os.getpid() if pid is None else pid,
        },
    )
    return tmp_path


def test_flags_win_over_env_and_state(tmp_path: Path) -> None:
    ctx = resolve(
        manager="http://127.0.0.1:1",
        token="from-flag",
        parallelism=None,
        env={"COFRE_MANAGER": "http://127.0.0.1:2", "COFRE_TOKEN": "from-env"},
        data_dir=_state(tmp_path),
    )
    assert (ctx.manager_url, ctx.token) == ("http://127.0.0.1:1", "from-flag")


def test_env_wins_over_state(tmp_path: Path) -> None:
    ctx = resolve(
        manager=None,
        token=None,
        parallelism=None,
        env={"COFRE_MANAGER": "http://127.0.0.1:2/", "COFRE_TOKEN": "from-env"},
        data_dir=_state(tmp_path),
    )
    assert (ctx.manager_url, ctx.token) == ("http://127.0.0.1:2", "from-env")


def test_state_file_of_local_up_is_the_fallback(tmp_path: Path) -> None:
    ctx = resolve(manager=None, token=None, parallelism=None, env={}, data_dir=_state(tmp_path))
    assert (ctx.manager_url, ctx.token) == ("http://127.0.0.1:7000", "from-state")


def test_cofre_data_dir_names_the_default_state_dir(tmp_path: Path) -> None:
    _state(tmp_path)
    env = {"COFRE_DATA_DIR": str(tmp_path)}
    assert default_data_dir(env) == tmp_path
    ctx = resolve(manager=None, token=None, parallelism=None, env=env)
    assert ctx.token == "from-state"


def test_each_setting_resolves_on_its_own(tmp_path: Path) -> None:
    ctx = resolve(
        manager="http://127.0.0.1:1",
        token=None,
        parallelism=None,
        env={},
        data_dir=_state(tmp_path),
    )
    assert (ctx.manager_url, ctx.token) == ("http://127.0.0.1:1", "from-state")


def test_nothing_configured_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no manager"):
        resolve(manager=None, token=None, parallelism=None, env={}, data_dir=tmp_path)


def test_manager_without_token_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no cluster token"):
        resolve(
            manager="http://127.0.0.1:1", token=None, parallelism=None, env={}, data_dir=tmp_path
        )


def test_manager_must_be_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="http://"):
        resolve(manager="127.0.0.1:1", token="t", parallelism=None, env={}, data_dir=tmp_path)


def test_parallelism_from_flag_env_or_default(tmp_path: Path) -> None:
    base = {"manager": "http://127.0.0.1:1", "token": "t", "data_dir": tmp_path}
    assert resolve(parallelism=None, env={}, **base).parallelism == 4  # type: ignore[arg-type]
    env = {"COFRE_PARALLELISM": "8"}
    assert resolve(parallelism=None, env=env, **base).parallelism == 8  # type: ignore[arg-type]
    assert resolve(parallelism=2, env=env, **base).parallelism == 2  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        resolve(parallelism=None, env={"COFRE_PARALLELISM": "x"}, **base)  # type: ignore[arg-type]


def test_state_file_is_private(tmp_path: Path) -> None:
    _state(tmp_path)
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_stale_state_file_says_the_local_cluster_is_not_running(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its pid names no process now
    _state(tmp_path, pid=finished.pid)
    with pytest.raises(Unavailable, match="not running"):
        resolve(manager=None, token=None, parallelism=None, env={}, data_dir=tmp_path)
    # An explicit manager does not depend on the local cluster at all.
    ctx = resolve(
        manager="http://127.0.0.1:1", token=None, parallelism=None, env={}, data_dir=tmp_path
    )
    assert ctx.token == "from-state"
