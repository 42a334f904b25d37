"""The benchmark's pure parts: results, the table, the ratios, the targets, /proc parsing.

Kept apart from bench/run.py (which starts processes and moves bytes) so that they are
unit-tested (tests/unit/test_bench_tables.py) without running anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MIB = 2**20

# The workloads, in table order.
BIG_BACKUP = "1 GiB backup"
BIG_RESTORE = "1 GiB restore"
SMALL_BACKUP = "10,000 x 4 KiB backup"
SMALL_RESTORE = "10,000 x 4 KiB restore"
SMALL_AGAIN = "10,000 x 4 KiB unchanged, backed up again"
WORKLOADS = (BIG_BACKUP, BIG_RESTORE, SMALL_BACKUP, SMALL_RESTORE, SMALL_AGAIN)

COFRE = "cofre"
LIMIT = "limit"
RESTIC = "restic"
SEAWEED = "SeaweedFS"
SYSTEMS = (COFRE, LIMIT, RESTIC, SEAWEED)
PEERS = (LIMIT, RESTIC, SEAWEED)


@dataclass
class Result:
    system: str
    workload: str
    seconds: float
    nbytes: int
    nfiles: int
    # process name -> peak resident set in bytes during this workload ("cli", "node-0", ...)
    peak_rss: dict[str, int] = field(default_factory=dict)
    # CPU seconds (user + system) of the client and every server process during the workload:
    # steadier than wall time on a shared machine.
    cpu_s: float | None = None

    @property
    def mb_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds

    @property
    def files_s(self) -> float:
        return self.nfiles / self.seconds


def workload_names(big_mib: int, nfiles: int, file_kib: int) -> tuple[str, ...]:
    """The workload labels for other sizes than the issue's (a quick run says what it ran)."""
    big = f"{big_mib // 1024} GiB" if big_mib % 1024 == 0 else f"{big_mib} MiB"
    small = f"{nfiles:,} x {file_kib} KiB"
    return (
        f"{big} backup",
        f"{big} restore",
        f"{small} backup",
        f"{small} restore",
        f"{small} unchanged, backed up again",
    )


def parse_vmhwm(status: str) -> int:
    """Peak resident set (VmHWM) in bytes from the text of /proc/PID/status; 0 when absent
    (a kernel thread, or a process that exited)."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                scale = {"kb": 1024, "mb": MIB, "gb": 1024 * MIB}.get(unit, 1024)
                return int(parts[1]) * scale
    return 0


def parse_stat_cpu(stat: str, *, ticks: int) -> float:
    """User + system CPU seconds from the text of /proc/PID/stat (``ticks`` per second)."""
    # The command name (field 2) may hold spaces and parentheses: count from its last ")".
    fields = stat.rpartition(")")[2].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    if len(fields) < 13:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / ticks


def ratio(mine: Result | None, other: Result | None) -> float | None:
    """How many times faster ``mine`` is than ``other`` (throughput over throughput)."""
    if mine is None or other is None or other.seconds <= 0 or mine.seconds <= 0:
        return None
    if other.nbytes and mine.nbytes:
        return mine.mb_s / other.mb_s
    return other.seconds / mine.seconds


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def fmt_mib(nbytes: int) -> str:
    return f"{nbytes / MIB:.0f}"


def fmt_rss(peaks: Mapping[str, int]) -> str:
    """``cli 61 · manager 55 · node 119/110/98/97``: processes of one role grouped, the
    numbered ones (node-0, volume-1, ...) in number order."""
    if not peaks:
        return "-"
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, value in peaks.items():
        role, _, num = name.rpartition("-")
        if not role or not num.isdigit():
            role, num = name, ""
        groups.setdefault(role, []).append((num, value))
    parts = []
    for role, members in groups.items():
        members.sort(key=lambda m: (len(m[0]), m[0]))
        parts.append(f"{role} " + "/".join(fmt_mib(v) for _, v in members))
    return " · ".join(parts)


def table(results: Sequence[Result], workloads: Sequence[str] = WORKLOADS) -> str:
    by = {(r.system, r.workload): r for r in results}
    lines = [
        "| workload | system | MB/s | files/s | CPU s | peak RSS MiB per process "
        "| cofre ÷ limit | cofre ÷ restic | cofre ÷ SeaweedFS |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for workload in workloads:
        mine = by.get((COFRE, workload))
        for system in SYSTEMS:
            r = by.get((system, workload))
            if r is None:
                continue
            # files/s says nothing about one file.
            files_s = f"{r.files_s:,.0f}" if r.nfiles > 1 else "-"
            ratios = ["", "", ""]
            if system == COFRE:
                ratios = [fmt_ratio(ratio(mine, by.get((peer, workload)))) for peer in PEERS]
            cpu = "-" if r.cpu_s is None else f"{r.cpu_s:.1f}"
            rss = fmt_rss(r.peak_rss)
            lines.append(
                f"| {workload} | {system} | {r.mb_s:,.1f} | {files_s} | {cpu} | {rss} "
                f"| {' | '.join(ratios)} |"
            )
    return "\n".join(lines)


def spread(stored: Mapping[str, int]) -> float | None:
    """max ÷ min of the bytes stored per node; None without nodes, inf when one holds none."""
    if not stored:
        return None
    low, high = min(stored.values()), max(stored.values())
    if low == 0:
        return float("inf") if high else 1.0
    return high / low


def fmt_spread(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "∞ (a node holds nothing)"
    # A node holding only its metadata (a few KiB) beside gigabytes on another.
    return "> 100 (a node holds almost nothing)" if value > 100 else f"{value:.2f}"


def stored_table(rows: Iterable[tuple[str, Mapping[str, int]]]) -> str:
    lines = [
        "| after | stored MiB per node | max ÷ min |",
        "| --- | --- | ---: |",
    ]
    for after, stored in rows:
        per_node = " / ".join(fmt_mib(stored[n]) for n in sorted(stored))
        lines.append(f"| {after} | {per_node} | {fmt_spread(spread(stored))} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    what: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    def row(self) -> str:
        status = {True: "met", False: "missed", None: "not measured"}[self.met]
        return f"| {self.what} | {self.target} | {self.measured} | {status} |"


def _ratio_verdicts(
    by: Mapping[tuple[str, str], Result], workload: str, wants: Sequence[tuple[str, float]]
) -> list[Verdict]:
    out = []
    mine = by.get((COFRE, workload))
    for peer, want in wants:
        got = ratio(mine, by.get((peer, workload)))
        target = f"≥ {want:g}x {peer}"
        if got is None:
            out.append(Verdict(workload, target, "-", None))
        elif got >= want:
            out.append(Verdict(workload, target, f"{got:.2f}x", True))
        else:
            short = (1 - got / want) * 100
            out.append(Verdict(workload, target, f"{got:.2f}x ({short:.0f}% short)", False))
    return out


def verdicts(
    results: Sequence[Result],
    stored: Sequence[tuple[str, Mapping[str, int]]],
    workloads: Sequence[str] = WORKLOADS,
    *,
    max_spread: float = 1.5,
    max_rss: int = 100 * MIB,
) -> list[Verdict]:
    """Each target of the benchmark against what this run measured."""
    big_backup, big_restore, small_backup, small_restore, small_again = workloads
    by = {(r.system, r.workload): r for r in results}
    both = ((RESTIC, 1.0), (SEAWEED, 1.0))
    out: list[Verdict] = []
    out += _ratio_verdicts(by, small_backup, both)
    out += _ratio_verdicts(by, small_restore, both)
    out += _ratio_verdicts(by, small_again, ((RESTIC, 1.0),))
    out += _ratio_verdicts(by, big_backup, (*both, (LIMIT, 0.5)))
    out += _ratio_verdicts(by, big_restore, both)
    worst = max((spread(s) or 0.0 for _, s in stored), default=None)
    if worst is None:
        out.append(Verdict("stored bytes across nodes", f"max ÷ min ≤ {max_spread}", "-", None))
    else:
        met = worst <= max_spread
        out.append(
            Verdict(
                "stored bytes across nodes",
                f"max ÷ min ≤ {max_spread:g}",
                f"worst {fmt_spread(worst)}",
                met,
            )
        )
    peaks: dict[str, int] = {}
    for r in results:
        if r.system != COFRE:
            continue
        for name, value in r.peak_rss.items():
            if name == "cli" or name.startswith("node"):
                peaks[name] = max(peaks.get(name, 0), value)
    if not peaks:
        out.append(Verdict("peak RSS", f"≤ {fmt_mib(max_rss)} MiB", "-", None))
    else:
        name, top = max(peaks.items(), key=lambda kv: kv[1])
        measured = f"largest {fmt_mib(top)} MiB ({name})"
        if top > max_rss:
            measured += f", {fmt_mib(top - max_rss)} MiB over"
        out.append(
            Verdict(
                "peak RSS, CLI and each node", f"≤ {fmt_mib(max_rss)} MiB", measured, top <= max_rss
            )
        )
    return out


def verdict_table(items: Sequence[Verdict]) -> str:
    lines = ["| workload | target | measured | |", "| --- | --- | --- | --- |"]
    lines += [v.row() for v in items]
    return "\n".join(lines)
