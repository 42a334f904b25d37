"""Benchmark: what TLS costs a backup and a restore, on `cofre local up`.

    python bench/tls.py [--mib 256] [--rounds 2]

Puts and gets one file of random bytes through a real `cofre local up` (4 nodes, replication
factor 2) over TLS and with --insecure (plain HTTP), the two alternating round by round so that
load from elsewhere on the machine falls on both alike. Reports, per mode and direction, the
best wall time and the CPU seconds every process used (the CLI plus the manager and the nodes,
from /proc), which a busy machine disturbs less than wall time. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COFRE = str(Path(sys.executable).parent / "cofre")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def service_pids(data_dir: Path) -> list[int]:
    import json

    state = json.loads((data_dir / "state.json").read_text())
    return [int(p) for p in state["pids"].values()]


@contextmanager
def cluster(work: Path, *, insecure: bool) -> Iterator[tuple[dict[str, str], Path]]:
    data_dir = work / ("plain" if insecure else "tls")
    shutil.rmtree(data_dir, ignore_errors=True)
    argv = [COFRE, "local", "up", "--data-dir", str(data_dir), "--port", str(free_port())]
    argv += ["--nodes", "4", "--replication-factor", "2"] + (["--insecure"] if insecure else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFRE_")}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    while "COFRE_TOKEN" not in env:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("bench: cofre local up did not start")
        key, _, value = line.strip().partition("=")
        if key in ("COFRE_MANAGER", "COFRE_CA", "COFRE_TOKEN"):
            env[key] = value
    if insecure:
        env["COFRE_INSECURE"] = "1"
    try:
        yield env, data_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def timed(argv: list[str], env: dict[str, str], services: list[int]) -> tuple[float, float]:
    """Run a CLI command; -> (wall seconds, CPU seconds of it and the services)."""
    before_services = cpu_s(services)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cli + cpu_s(services) - before_services


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "tls")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    src = args.work / "src.bin"
    with src.open("wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(1 << 20))
    digest = sha256(src)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_no in range(args.rounds):
        for insecure in (False, True):
            mode = "plain HTTP (--insecure)" if insecure else "TLS"
            with cluster(args.work, insecure=insecure) as (env, data_dir):
                services = service_pids(data_dir)
                back = args.work / "back.bin"
                back.unlink(missing_ok=True)
                name = f"f{round_no}"
                put = timed([COFRE, "put", str(src), "--name", name], env, services)
                get = timed([COFRE, "get", name, "-o", str(back)], env, services)
                if sha256(back) != digest:
                    raise SystemExit("bench: restored a different file")
                results.setdefault((mode, "put"), []).append(put)
                results.setdefault((mode, "get"), []).append(get)
                print(f"round {round_no + 1} {mode}: put {put[0]:.1f} s, get {get[0]:.1f} s",
                      file=sys.stderr)  # fmt: skip
    mb = args.mib * 1024 * 1024 / 1e6
    print(f"| {args.mib} MiB, best of {args.rounds} | wall s | MB/s | CPU s (all processes) |")
    print("| --- | ---: | ---: | ---: |")
    for (mode, op), runs in results.items():
        wall = min(w for w, _ in runs)
        cpu = min(c for _, c in runs)
        print(f"| {op} over {mode} | {wall:.1f} | {mb / wall:.0f} | {cpu:.1f} |")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
