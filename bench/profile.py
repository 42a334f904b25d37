"""Profile of cofre's big-file path: where the CLI and the nodes spend their CPU.

    python bench/profile.py [--big-mib 512] [--rate 100]

Starts `cofre local up` (4 nodes, F=2), then backs one random file up and restores it with py-spy
sampling the CLI and every node. Writes the top functions of each into docs/benchmarks.md
between markers (bench/run.py keeps that section when it rewrites the file) and the raw stacks
(flamegraph.pl / speedscope input) into bench/out/profile/.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

ROOT = run.ROOT
PY_SPY = "py-spy==0.4.3"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")
TOP = 10


def ensure_py_spy() -> str:
    found = Path(sys.executable).parent / "py-spy"
    if not found.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PY_SPY], check=True)
    return str(found)


def short_frame(frame: str) -> str:
    """``func (path/to/cofre/cli/upload.py:12)`` -> ``func (cofre/cli/upload.py)``; files outside
    cofre keep their last two path parts."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    if path.startswith("cofre/"):
        pass
    elif "/cofre/" in path:
        path = "cofre/" + path.rsplit("/cofre/", 1)[1]
    elif path.startswith("<"):
        pass
    else:
        path = "/".join(path.split("/")[-2:])
    return f"{m.group('func')} ({path})"


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """py-spy's raw output: ``frame;frame;frame COUNT`` per line, outermost frame first."""
    stacks = []
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([short_frame(f) for f in stack.split(";")], int(count)))
    return stacks


# Frames on (nearly) every stack of their process: entry points, module bodies, middlewares
# and guards around every call. They say nothing about where the cost is.
WRAPPERS = re.compile(
    r"^(?:[\w.<>]+\.)?(<module>|main|run|_dispatch|_guarded|.*middleware.*) \("
    r"|__main__\.py\)$|cli/main\.py\)$"
)


def _wrapper(frame: str) -> bool:
    return bool(WRAPPERS.search(frame))


def summarise(
    stacks: list[tuple[list[str], int]],
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top functions by own samples, top cofre functions by samples under them)."""
    total = sum(n for _, n in stacks)
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        own[frames[-1]] += n
        for frame in set(frames):
            if "(cofre/" in frame and not _wrapper(frame):
                under[frame] += n
    return total, own.most_common(TOP), under.most_common(TOP)


def section(title: str, stacks: list[tuple[list[str], int]], seconds: float, rate: int) -> str:
    total, own, under = summarise(stacks)
    if not total:
        return f"### {title}\n\nno samples (the process was idle)\n"
    busy = total / rate / seconds * 100 if seconds else 0.0
    lines = [
        f"### {title}",
        "",
        f"{total} samples at {rate}/s over {seconds:.1f} s: active about {busy:.0f}% of the time.",
        "",
        "| own % | function (where the CPU is) | | under % | cofre function (what it costs) |",
        "| ---: | --- | --- | ---: | --- |",
    ]
    for i in range(max(len(own), len(under))):
        left = own[i] if i < len(own) else None
        right = under[i] if i < len(under) else None
        lines.append(
            "| "
            + (f"{left[1] / total * 100:.1f} | `{left[0]}`" if left else " | ")
            + " | | "
            + (f"{right[1] / total * 100:.1f} | `{right[0]}`" if right else " | ")
            + " |"
        )
    return "\n".join(lines) + "\n"


def merge(paths: Iterable[Path]) -> list[tuple[list[str], int]]:
    out: list[tuple[list[str], int]] = []
    for p in paths:
        if p.exists():
            out += parse_collapsed(p.read_text().splitlines())
    return out


def profiled(
    py_spy: str,
    cmd: list[str],
    *,
    nodes: Mapping[str, int],
    out: Path,
    tag: str,
    rate: int,
    env: Mapping[str, str],
    cwd: Path,
) -> float:
    """Run ``cmd`` under py-spy with every node sampled too; seconds the command took."""
    watchers = []
    for name, pid in nodes.items():
        watchers.append(
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--nonblocking",
                    "-r",
                    str(rate),
                    "-f",
                    "raw",
                    "-p",
                    str(pid),
                    "-o",
                    str(out / f"{tag}-{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)  # py-spy attaches before the work starts; a miss only loses samples
    run.drop_caches()
    start = time.perf_counter()
    subprocess.run(
        [
            py_spy,
            "record",
            "--nonblocking",
            "-r",
            str(rate),
            "-f",
            "raw",
            "-o",
            str(out / f"{tag}-cli.txt"),
            "--",
            *cmd,
        ],
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    for w in watchers:
        w.send_signal(signal.SIGINT)
    for w in watchers:
        w.wait(timeout=60)
    return elapsed


def write_section(report: Path, text: str) -> None:
    body = f"{run.PROFILE_BEGIN}\n{text.rstrip()}\n{run.PROFILE_END}\n"
    old = report.read_text() if report.exists() else ""
    start, end = old.find(run.PROFILE_BEGIN), old.find(run.PROFILE_END)
    if 0 <= start < end:
        new = old[:start] + body + old[end + len(run.PROFILE_END) :].lstrip("\n")
    else:
        new = old.rstrip() + "\n\n" + body
    report.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    py_spy = ensure_py_spy()
    work: Path = args.work.resolve()
    out = work / "profile"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    big = work / "data" / f"profile-{args.big_mib}.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    if not big.exists() or big.stat().st_size != args.big_mib * 2**20:
        with big.open("wb") as f:
            for _ in range(args.big_mib):
                f.write(os.urandom(2**20))
    cofre = run.cofre_bin()
    restored = work / "profile-restored.bin"
    with run.cofre_cluster(work) as (env, data_dir):
        nodes = {k: v for k, v in run.cofre_servers(data_dir).pids.items() if k.startswith("node")}
        common = {"nodes": nodes, "out": out, "rate": args.rate, "env": env, "cwd": work}
        put_s = profiled(py_spy, [cofre, "put", str(big), "--name", "big"], tag="put", **common)  # type: ignore[arg-type]
        get_s = profiled(py_spy, [cofre, "get", "big", "-o", str(restored)], tag="get", **common)  # type: ignore[arg-type]
    run.check_same_file(restored, big, "cofre")
    restored.unlink()
    size = big.stat().st_size / 1e6
    parts = [
        "## Profile of the big-file path",
        "",
        f"`make profile` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit "
        f"{run.git_commit()}: `cofre put` and `cofre get` of one {args.big_mib} MiB random file "
        "on `cofre local up` (4 nodes, F=2), sampled by py-spy (threads it sees active: "
        "running, or in a system call such as a write or fsync; waits on sockets and locks "
        "left out). "
        f"put took {put_s:.1f} s ({size / put_s:.0f} MB/s under the profiler), get {get_s:.1f} s "
        f"({size / get_s:.0f} MB/s). *own %*: samples whose innermost frame is that function; "
        "*under %*: samples with that cofre function anywhere on the stack. The nodes' samples "
        "are summed over the 4 nodes. Raw stacks: bench/out/profile/*.txt (flamegraph.pl input).",
        "",
        section("put: CLI", merge([out / "put-cli.txt"]), put_s, args.rate),
        section("put: nodes", merge(out.glob("put-node-*.txt")), put_s, args.rate),
        section("get: CLI", merge([out / "get-cli.txt"]), get_s, args.rate),
        section("get: nodes", merge(out.glob("get-node-*.txt")), get_s, args.rate),
    ]
    text = "\n".join(parts)
    write_section(args.report, text)
    print(text)


if __name__ == "__main__":
    main()
