"""bench/run.py's pure helpers: the curl config that restores SeaweedFS's small files, and the
profile section kept across runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cofre_bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = load_run()


def test_curl_config_fetches_every_file_to_its_place(tmp_path: Path) -> None:
    small = tmp_path / "data" / "small"
    (small / "d00").mkdir(parents=True)
    for name in ("f00000", "f00001"):
        (small / "d00" / name).write_bytes(b"x")
    (tmp_path / "big.bin").write_bytes(b"y")
    data = run.Data(tmp_path / "big.bin", small, ("a", "b", "c", "d", "e"))
    text = run.curl_config("http://127.0.0.1:8888", data, tmp_path / "out")
    assert text.splitlines() == [
        'url = "http://127.0.0.1:8888/bench/small/d00/f00000"',
        f'output = "{tmp_path}/out/small/d00/f00000"',
        'url = "http://127.0.0.1:8888/bench/small/d00/f00001"',
        f'output = "{tmp_path}/out/small/d00/f00001"',
    ]


def test_the_profile_section_is_kept_and_nothing_else(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    assert run.kept_profile(report) == ""
    section = f"{run.PROFILE_BEGIN}\n## Profile\n\ntop functions\n{run.PROFILE_END}"
    report.write_text(f"# Benchmarks\n\nold table\n\n{section}\n\ntrailing words\n")
    assert run.kept_profile(report) == section + "\n"
    report.write_text(f"# Benchmarks\n{run.PROFILE_END}\n{run.PROFILE_BEGIN}\n")
    assert run.kept_profile(report) == ""
