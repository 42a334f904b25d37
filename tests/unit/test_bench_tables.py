"""The benchmark's pure parts (bench/tables.py): /proc parsing, ratios, the tables, the targets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cofre_bench_tables", ROOT / "bench" / "tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


t = load_tables()
MIB = 2**20

STATUS = """Name:\tpython3
State:\tS (sleeping)
VmPeak:\t  300000 kB
VmSize:\t  290000 kB
VmHWM:\t   121856 kB
VmRSS:\t    98304 kB
Threads:\t5
"""


def test_parse_vmhwm_reads_the_peak_not_the_current_rss() -> None:
    assert t.parse_vmhwm(STATUS) == 121856 * 1024


def test_parse_vmhwm_is_zero_without_the_line() -> None:
    # kernel threads and zombies have no memory lines
    assert t.parse_vmhwm("Name:\tkworker/0:1\nState:\tI (idle)\n") == 0
    assert t.parse_vmhwm("VmHWM:\t garbage kB\n") == 0


def test_parse_stat_cpu_adds_user_and_system_time() -> None:
    # a command name with spaces and a parenthesis must not shift the fields
    stat = "4242 (weird) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0"
    assert t.parse_stat_cpu(stat, ticks=100) == 3.0
    assert t.parse_stat_cpu("4242 (x) S 1", ticks=100) == 0.0


def result(system: str, workload: str, seconds: float, **kw: Any) -> Any:
    nbytes = kw.pop("nbytes", 1000 * 1_000_000)
    nfiles = kw.pop("nfiles", 1)
    peaks = kw.pop("peaks", {})
    return t.Result(system, workload, seconds, nbytes, nfiles, peaks, kw.pop("cpu_s", None))


def test_ratio_is_throughput_over_throughput() -> None:
    fast = result("cofre", t.BIG_BACKUP, 2.0)
    slow = result("restic", t.BIG_BACKUP, 8.0)
    assert t.ratio(fast, slow) == 4.0
    assert t.ratio(slow, fast) == 0.25
    assert t.ratio(fast, None) is None
    assert t.fmt_ratio(t.ratio(slow, fast)) == "0.25"
    assert t.fmt_ratio(None) == ""


def test_fmt_rss_groups_numbered_processes_in_number_order() -> None:
    peaks = {
        "cli": 61 * MIB,
        "manager": 55 * MIB,
        "node-10": 7 * MIB,
        "node-2": 110 * MIB,
        "node-0": 119 * MIB,
    }
    assert t.fmt_rss(peaks) == "cli 61 · manager 55 · node 119/110/7"
    assert t.fmt_rss({}) == "-"


def test_table_gives_each_system_and_cofre_ratios_to_every_peer() -> None:
    results = [
        result("cofre", t.BIG_BACKUP, 10.0, peaks={"cli": 90 * MIB}, cpu_s=12.34),
        result("limit", t.BIG_BACKUP, 2.5),
        result("restic", t.BIG_BACKUP, 5.0),
        result("SeaweedFS", t.BIG_BACKUP, 20.0),
        result("cofre", t.SMALL_BACKUP, 4.0, nbytes=40_960_000, nfiles=10_000),
    ]
    text = t.table(results)
    rows = text.splitlines()
    assert rows[0].count("|") == 10
    cofre_big = next(r for r in rows if r.startswith(f"| {t.BIG_BACKUP} | cofre |"))
    assert cofre_big == (
        f"| {t.BIG_BACKUP} | cofre | 100.0 | - | 12.3 | cli 90 | 0.25 | 0.50 | 2.00 |"
    )
    restic_big = next(r for r in rows if r.startswith(f"| {t.BIG_BACKUP} | restic |"))
    assert restic_big.endswith("|  |  |  |")
    small = next(r for r in rows if r.startswith(f"| {t.SMALL_BACKUP} | cofre |"))
    # no peer measured: no ratio, and files/s shown for many files
    assert "| 2,500 |" in small and small.endswith("|  |  |  |")
    # rows follow the workload order, cofre first within one
    assert rows.index(cofre_big) < rows.index(restic_big) < rows.index(small)


def test_spread_and_the_stored_table() -> None:
    assert t.spread({"node-0": 300, "node-1": 200}) == 1.5
    assert t.spread({"node-0": 300, "node-1": 0}) == float("inf")
    assert t.spread({}) is None
    text = t.stored_table([("after x", {"node-1": 2 * MIB, "node-0": 4 * MIB})])
    assert text.splitlines()[-1] == "| after x | 4 / 2 | 2.00 |"
    assert "a node holds nothing" in t.fmt_spread(float("inf"))
    assert t.fmt_spread(t.spread({"node-0": 2**30, "node-1": 4096})).startswith("> 100")


def test_verdicts_say_met_and_by_how_much_a_target_is_missed() -> None:
    results = [
        result("cofre", t.BIG_BACKUP, 10.0, peaks={"cli": 60 * MIB, "node-3": 130 * MIB}),
        result("limit", t.BIG_BACKUP, 4.0),
        result("restic", t.BIG_BACKUP, 8.0),
        result("SeaweedFS", t.BIG_BACKUP, 12.0),
    ]
    stored = [("after", {"node-0": 100, "node-1": 140})]
    by = {(v.what, v.target): v for v in t.verdicts(results, stored)}
    vs_restic = by[(t.BIG_BACKUP, "≥ 1x restic")]
    assert vs_restic.met is False and vs_restic.measured == "0.80x (20% short)"
    vs_weed = by[(t.BIG_BACKUP, "≥ 1x SeaweedFS")]
    assert vs_weed.met is True and vs_weed.measured == "1.20x"
    vs_limit = by[(t.BIG_BACKUP, "≥ 0.5x limit")]
    assert vs_limit.met is False and vs_limit.measured == "0.40x (20% short)"
    assert by[(t.SMALL_BACKUP, "≥ 1x restic")].met is None
    spread = by[("stored bytes across nodes", "max ÷ min ≤ 1.5")]
    assert spread.met is True and spread.measured == "worst 1.40"
    rss = by[("peak RSS, CLI and each node", "≤ 100 MiB")]
    assert rss.met is False and rss.measured == "largest 130 MiB (node-3), 30 MiB over"
    table = t.verdict_table(list(by.values()))
    assert "| missed |" in table and "| met |" in table and "| not measured |" in table


def test_workload_names_follow_the_sizes_run() -> None:
    assert t.workload_names(1024, 10_000, 4) == t.WORKLOADS
    assert t.workload_names(64, 200, 4)[0] == "64 MiB backup"
    assert t.workload_names(64, 200, 4)[4] == "200 x 4 KiB unchanged, backed up again"
