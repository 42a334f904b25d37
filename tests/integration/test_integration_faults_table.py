"""The fault scenarios of `make faults` (bench/faults.py) at a few runs each: every committed
version restores to what was put, none misses a chunk, and each failure is the one its fault
should cause."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_faults() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cofre_bench_faults", ROOT / "bench" / "faults.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


faults = load_faults()

# (scenario, runs, keyword arguments): small enough that all of them take well under 2 minutes.
SMALL: list[tuple[str, int, dict[str, Any]]] = [
    ("node-kill", 1, {}),
    ("manager-kill", 1, {}),
    ("bit-flip", 1, {}),
    ("store-wipe", 1, {"mib": 16}),
    ("disk-full", 1, {}),
    ("clients", 1, {"clients": 4, "files": 5}),
    ("race", 2, {}),
]


@pytest.mark.parametrize(("scenario", "runs", "kwargs"), SMALL, ids=[s[0] for s in SMALL])
def test_fault_scenario_loses_nothing(
    scenario: str, runs: int, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    if scenario == "disk-full" and os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    fn, _full = faults.SCENARIOS[scenario]
    row = fn(tmp_path, runs, **kwargs)
    assert row.runs == runs
    assert row.ops >= runs
    assert row.unexpected_failures == [], row
    assert row.bytes_lost == 0, row
    assert row.corrupt_restores == 0, row
    assert row.missing_chunk_versions == 0, row
    assert row.zero_goals
    # Something was verified by restoring it, not only counted.
    assert row.versions_checked >= 1, row
    if scenario in ("bit-flip", "store-wipe"):
        assert row.full_copies != "-", row
    if scenario == "manager-kill":
        # Every run is counted as cut by the kill or ended before it.
        said = re.search(
            r"(\d+) of (\d+) puts cut mid-transfer by the kill, (\d+) ended before it",
            "; ".join(row.notes),
        )
        assert said, row
        cut, of, before = map(int, said.groups())
        assert of == runs and cut + before == runs, row


def test_table_has_a_row_per_scenario_with_its_figures() -> None:
    row = faults.Row("a scenario", runs=3, ops=5, expected_failures=2, versions_checked=4)
    row.unexpected_failures.append("put x: exit 1")
    text = faults.table([row])
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("| a scenario | 3 | 5 | 2 | 1 | 4 | 0 | 0 | 0 | - |")
    row.bytes_lost = 1
    assert not row.zero_goals
