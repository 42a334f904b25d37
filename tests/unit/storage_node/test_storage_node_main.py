"""The entry point's handling of bad configuration: one line on stderr, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cofre.storage_node.__main__ import main


def test_missing_token_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COFRE_TOKEN", raising=False)
    assert main(["--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "COFRE_TOKEN" in err


def test_unusable_flag_value_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COFRE_TOKEN", "t")
    assert main(["--port", "eighty"]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "--port" in err


def test_help_shows_each_flags_help_and_unit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--reserve-bytes BYTES writes are refused when the volume would have less" in text
    assert "unit: bytes; default: 33554432; env COFRE_RESERVE_BYTES" in text
    assert "--relay-sweep-interval-s SECONDS" in text


def test_bad_log_level_is_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cofre.storage_node", "--port", "0"],
        env={**os.environ, "COFRE_TOKEN": "t", "COFRE_LOG_LEVEL": "loud"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "COFRE_LOG_LEVEL" in proc.stderr and "Traceback" not in proc.stderr
