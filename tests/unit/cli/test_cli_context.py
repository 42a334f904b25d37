"""The CLI's settings: defaults < environment < flags, then the local state file for the
manager and token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from cofre.cli.context import Context, load_settings, resolve
from cofre.cli.exitcodes import UsageError
from cofre.cli.localstate import LocalState, write_state
from cofre.cli.main import build_parser
from cofre.errors import Unavailable


def _state(tmp_path: Path, pid: int | None = None) -> Path:
    write_state(
        tmp_path,
        LocalState(
            manager_url="https://127.0.0.1:7000",
            token="from-state",
            pid=os.getpid() if pid is None else pid,
        ),
    )
    return tmp_path


def _ctx(*flags: str, env: Mapping[str, str], data_dir: Path) -> Context:
    """What `cofre put x FLAGS` runs with, the state file looked for in ``data_dir``."""
    args = build_parser().parse_args(["put", "x", "--data-dir", str(data_dir), *flags])
    return resolve(load_settings(env=env, args=args))


def test_defaults_then_env_then_flags(tmp_path: Path) -> None:
    args = build_parser().parse_args(["put", "x"])
    defaults = load_settings(env={}, args=args)
    assert (defaults.parallelism, defaults.timeout_s, defaults.connect_timeout_s) == (4, 300.0, 10)
    assert defaults.log_level == "WARNING"
    assert defaults.data_dir == Path(".cofre-local")
    env = {"COFRE_PARALLELISM": "8", "COFRE_TIMEOUT_S": "30", "COFRE_LOG_LEVEL": "info"}
    from_env = load_settings(env=env, args=args)
    assert (from_env.parallelism, from_env.timeout_s, from_env.log_level) == (8, 30.0, "INFO")
    assert from_env.connect_timeout_s == 10.0  # not in env: the default
    flags = build_parser().parse_args(["put", "x", "--parallelism", "2", "--timeout-s", "5"])
    from_flags = load_settings(env=env, args=flags)
    assert (from_flags.parallelism, from_flags.timeout_s) == (2, 5.0)
    assert from_flags.log_level == "INFO"  # no flag: the environment


def test_flags_win_over_env_and_state(tmp_path: Path) -> None:
    ctx = _ctx(
        "--manager",
        "https://127.0.0.1:1",
        "--token",
        "from-flag",
        env={"COFRE_MANAGER": "https://127.0.0.1:2", "COFRE_TOKEN": "from-env"},
        data_dir=_state(tmp_path),
    )
    assert (ctx.manager_url, ctx.token) == ("https://127.0.0.1:1", "from-flag")


def test_env_wins_over_state(tmp_path: Path) -> None:
    ctx = _ctx(
        env={"COFRE_MANAGER": "https://127.0.0.1:2/", "COFRE_TOKEN": "from-env"},
        data_dir=_state(tmp_path),
    )
    assert (ctx.manager_url, ctx.token) == ("https://127.0.0.1:2", "from-env")


def test_both_spellings_of_the_manager_work_and_the_old_one_wins(tmp_path: Path) -> None:
    env = {"COFRE_MANAGER_URL": "https://127.0.0.1:3", "COFRE_TOKEN": "t"}
    assert _ctx(env=env, data_dir=tmp_path).manager_url == "https://127.0.0.1:3"
    both = {**env, "COFRE_MANAGER": "https://127.0.0.1:2"}
    assert _ctx(env=both, data_dir=tmp_path).manager_url == "https://127.0.0.1:2"
    flag = _ctx("--manager-url", "https://127.0.0.1:4", env=both, data_dir=tmp_path)
    assert flag.manager_url == "https://127.0.0.1:4"


def test_state_file_of_local_up_is_the_fallback(tmp_path: Path) -> None:
    ctx = _ctx(env={}, data_dir=_state(tmp_path))
    assert (ctx.manager_url, ctx.token) == ("https://127.0.0.1:7000", "from-state")


def test_cofre_data_dir_names_the_default_state_dir(tmp_path: Path) -> None:
    _state(tmp_path)
    env = {"COFRE_DATA_DIR": str(tmp_path)}
    settings = load_settings(env=env, args=build_parser().parse_args(["ls"]))
    assert settings.data_dir == tmp_path
    assert resolve(settings).token == "from-state"
    # An empty variable is unset: the default dir.
    assert load_settings(env={"COFRE_DATA_DIR": ""}).data_dir == Path(".cofre-local")


def test_each_setting_resolves_on_its_own(tmp_path: Path) -> None:
    ctx = _ctx("--manager", "https://127.0.0.1:1", env={}, data_dir=_state(tmp_path))
    assert (ctx.manager_url, ctx.token) == ("https://127.0.0.1:1", "from-state")


def test_nothing_configured_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no manager"):
        _ctx(env={}, data_dir=tmp_path)


def test_manager_without_token_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no cluster token"):
        _ctx("--manager", "https://127.0.0.1:1", env={}, data_dir=tmp_path)


def test_manager_must_be_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="http://"):
        _ctx("--manager", "127.0.0.1:1", "--token", "t", env={}, data_dir=tmp_path)


def test_parallelism_from_flag_env_or_default(tmp_path: Path) -> None:
    base = ("--manager", "https://127.0.0.1:1", "--token", "t")
    assert _ctx(*base, env={}, data_dir=tmp_path).parallelism == 4
    env = {"COFRE_PARALLELISM": "8"}
    assert _ctx(*base, env=env, data_dir=tmp_path).parallelism == 8
    assert _ctx(*base, "--parallelism", "2", env=env, data_dir=tmp_path).parallelism == 2
    with pytest.raises(UsageError, match="COFRE_PARALLELISM"):
        _ctx(*base, env={"COFRE_PARALLELISM": "x"}, data_dir=tmp_path)
    with pytest.raises(UsageError, match="between 1 and 64"):
        _ctx(*base, "--parallelism", "0", env={}, data_dir=tmp_path)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"COFRE_TIMEOUT_S": "0"}, "COFRE_TIMEOUT_S"),
        ({"COFRE_CONNECT_TIMEOUT_S": "soon"}, "COFRE_CONNECT_TIMEOUT_S"),
        ({"COFRE_LOG_LEVEL": "loud"}, "COFRE_LOG_LEVEL"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        load_settings(env=env)


def test_state_file_is_private(tmp_path: Path) -> None:
    _state(tmp_path)
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_stale_state_file_says_the_local_cluster_is_not_running(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its pid names no process now
    _state(tmp_path, pid=finished.pid)
    with pytest.raises(Unavailable, match="not running"):
        _ctx(env={}, data_dir=tmp_path)
    # An explicit manager does not depend on the local cluster at all.
    ctx = _ctx("--manager", "https://127.0.0.1:1", env={}, data_dir=tmp_path)
    assert ctx.token == "from-state"


def test_bad_log_level_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "COFRE_LOG_LEVEL": "loud", "COFRE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "cofre.cli", "ls"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "COFRE_LOG_LEVEL" in proc.stderr and "Traceback" not in proc.stderr


def test_plain_http_is_refused_without_insecure_and_warned_about_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("--manager", "http://127.0.0.1:1", "--token", "t")
    with pytest.raises(UsageError, match=r"plain HTTP.*--insecure"):
        _ctx(*base, env={}, data_dir=tmp_path)
    assert capsys.readouterr().err == ""
    for flags, env in [(("--insecure",), {}), ((), {"COFRE_INSECURE": "1"})]:
        ctx = _ctx(*base, *flags, env=env, data_dir=tmp_path)
        assert ctx.insecure is True
        err = capsys.readouterr().err
        assert err.startswith("cofre: warning: plain HTTP to http://127.0.0.1:1")
        assert err.count("\n") == 1
    # https needs no flag and says nothing.
    assert _ctx("--manager", "https://127.0.0.1:1", "--token", "t", env={}, data_dir=tmp_path)
    assert capsys.readouterr().err == ""


def test_the_ca_comes_from_the_flag_the_env_or_the_local_cluster(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    write_state(
        tmp_path,
        LocalState(
            manager_url="https://127.0.0.1:7000",
            token="tok",
            pid=os.getpid(),
            ca_file=str(ca),
        ),
    )
    assert _ctx(env={}, data_dir=tmp_path).ca == str(ca)
    other = tmp_path / "other.crt"
    other.write_text("pem")
    assert _ctx("--ca", str(other), env={}, data_dir=tmp_path).ca == str(other)
    assert _ctx(env={"COFRE_CA": str(other)}, data_dir=tmp_path).ca == str(other)
    # Another manager does not get the local cluster's CA.
    elsewhere = _ctx("--manager", "https://10.0.0.1:1", env={}, data_dir=tmp_path)
    assert elsewhere.ca == ""
    with pytest.raises(UsageError, match=r"CA file .*missing\.crt"):
        _ctx("--ca", str(tmp_path / "missing.crt"), env={}, data_dir=tmp_path)


def test_a_local_cluster_started_insecure_is_reached_over_http_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_state(
        tmp_path,
        LocalState(manager_url="http://127.0.0.1:7000", token="t", pid=os.getpid(), insecure=True),
    )
    ctx = _ctx(env={}, data_dir=tmp_path)
    assert ctx.insecure and ctx.manager_url == "http://127.0.0.1:7000"
    assert "warning: plain HTTP" in capsys.readouterr().err
