"""The entry point's handling of bad configuration: one line on stderr, exit 2."""

from __future__ import annotations

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
