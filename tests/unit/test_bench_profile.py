"""The profile summary's pure parts (bench/profile.py): py-spy's collapsed stacks to top lists."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_profile() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cofre_bench_profile", ROOT / "bench" / "profile.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


p = load_profile()

RAW = [
    "<module> (cofre:3);main (cofre/cli/main.py:20);_read_and_hash (cofre/cli/upload.py:120) 30",
    "<module> (cofre:3);main (cofre/cli/main.py:20);_read_and_hash (cofre/cli/upload.py:120);"
    "hash_bytes (cofre/chunks.py:22) 10",
    "_bootstrap (/usr/lib/python3.11/threading.py:995);"
    "select (/usr/lib/python3.11/selectors.py:468) 60",
    "garbage line without a count",
]


def test_frames_are_shortened_to_the_function_and_its_file() -> None:
    assert p.short_frame("f (/x/y/site-packages/aiohttp/streams.py:12)") == "f (aiohttp/streams.py)"
    assert p.short_frame("f (cofre/cli/upload.py:1)") == "f (cofre/cli/upload.py)"
    assert p.short_frame("f (/work/tree/cofre/chunks.py:9)") == "f (cofre/chunks.py)"


def test_summary_counts_own_and_under_samples_and_skips_wrappers() -> None:
    stacks = p.parse_collapsed(RAW)
    assert len(stacks) == 3
    total, own, under = p.summarise(stacks)
    assert total == 100
    assert own[0] == ("select (python3.11/selectors.py)", 60)
    assert ("_read_and_hash (cofre/cli/upload.py)", 30) in own
    # under: everything below a cofre function, entry points (main, <module>) left out
    assert under[0] == ("_read_and_hash (cofre/cli/upload.py)", 40)
    assert ("hash_bytes (cofre/chunks.py)", 10) in under
    assert not any("main" in name for name, _ in under)


def test_section_renders_percentages_of_all_samples() -> None:
    text = p.section("put: CLI", p.parse_collapsed(RAW), seconds=2.0, rate=100)
    assert "100 samples at 100/s over 2.0 s: active about 50% of the time." in text
    assert "| 60.0 | `select (python3.11/selectors.py)` | | 40.0 | `_read_and_hash" in text
    assert "no samples" in p.section("idle", [], seconds=1.0, rate=100)
