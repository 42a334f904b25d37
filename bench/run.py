"""Benchmark: cofre against the disk's physical limit and restic, in one run on one machine.

    python bench/run.py [--big-mib 1024] [--files 10000] [--file-kib 4]

Measures backing up and restoring one large file and many small files through a real
`cofre local up` (4 nodes, replication factor 2), the same bytes written twice and synced (what
F=2 must do at least), and restic (Debian's package) with a local repository, all on the same
disk; also backing the same data up again, unchanged. Writes one table to docs/benchmarks.md
and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 16 * 1024 * 1024


@dataclass
class Result:
    system: str
    workload: str
    seconds: float
    nbytes: int
    nfiles: int
    peak_rss: dict[str, int]  # process role -> bytes

    @property
    def mb_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds

    @property
    def files_s(self) -> float:
        return self.nfiles / self.seconds


def run_timed(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> tuple[float, int]:
    """Run ``cmd``; return (seconds, its peak RSS in bytes). Fails loudly on non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:3])} failed with {code}: {stderr.strip()[-500:]}")
    return elapsed, usage.ru_maxrss * 1024


def drop_caches() -> bool:
    """Restores read from disk, not from the page cache, where the kernel lets us."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def make_data(work: Path, big_mib: int, nfiles: int, file_kib: int) -> tuple[Path, Path]:
    big = work / "data" / "big.bin"
    small = work / "data" / "small"
    big.parent.mkdir(parents=True, exist_ok=True)
    if not big.exists() or big.stat().st_size != big_mib * 1024 * 1024:
        with big.open("wb") as f:
            for _ in range(big_mib * 1024 * 1024 // BLOCK):
                f.write(os.urandom(BLOCK))
    if not small.exists() or len(list(small.rglob("*"))) < nfiles:
        shutil.rmtree(small, ignore_errors=True)
        for i in range(nfiles):
            d = small / f"d{i // 1000:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}").write_bytes(os.urandom(file_kib * 1024))
    return big, small


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files_under(root)
    }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


# --- physical limit ------------------------------------------------------------------------


def limit_big(big: Path, out: Path) -> tuple[Result, Result]:
    out.mkdir(parents=True, exist_ok=True)
    size = big.stat().st_size
    drop_caches()
    start = time.perf_counter()
    copies = [open(out / f"copy{i}", "wb") for i in range(2)]  # noqa: SIM115
    with big.open("rb") as src:
        while block := src.read(BLOCK):
            for c in copies:
                c.write(block)
    for c in copies:
        c.flush()
        os.fsync(c.fileno())
        c.close()
    backup = Result("limit", "1 file backup", time.perf_counter() - start, size, 1, {})
    drop_caches()
    start = time.perf_counter()
    with (out / "copy0").open("rb") as src, (out / "restored").open("wb") as dst:
        while block := src.read(BLOCK):
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    restore = Result("limit", "1 file restore", time.perf_counter() - start, size, 1, {})
    shutil.rmtree(out)
    return backup, restore


def limit_small(small: Path, out: Path) -> tuple[Result, Result]:
    """Every file written twice (backup) or read and written once (restore), made durable with
    the fewest syncs possible: one sync of the filesystem at the end."""
    files = files_under(small)
    total = sum(p.stat().st_size for p in files)
    drop_caches()
    start = time.perf_counter()
    for copy in range(2):
        (out / f"c{copy}").mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(files):
        data = p.read_bytes()
        for copy in range(2):
            (out / f"c{copy}" / f"{i:05d}").write_bytes(data)
    os.sync()
    backup = Result(
        "limit", "small files backup", time.perf_counter() - start, total, len(files), {}
    )
    drop_caches()
    start = time.perf_counter()
    (out / "r").mkdir(parents=True, exist_ok=True)
    for i in range(len(files)):
        (out / "r" / f"{i:05d}").write_bytes((out / "c0" / f"{i:05d}").read_bytes())
    os.sync()
    restore = Result(
        "limit", "small files restore", time.perf_counter() - start, total, len(files), {}
    )
    shutil.rmtree(out)
    return backup, restore


def limit_again(big: Path, small: Path) -> tuple[Result, Result]:
    """Backing up unchanged data again: reading it once is the least a backup that looks at
    the bytes must do (restic looks only at file metadata and may beat it)."""
    size = big.stat().st_size
    drop_caches()
    start = time.perf_counter()
    with big.open("rb") as f:
        while f.read(BLOCK):
            pass
    big_again = Result("limit", "1 file backup again", time.perf_counter() - start, size, 1, {})
    files = files_under(small)
    drop_caches()
    start = time.perf_counter()
    total = sum(len(p.read_bytes()) for p in files)
    small_again = Result(
        "limit", "small files backup again", time.perf_counter() - start, total, len(files), {}
    )
    return big_again, small_again


# --- cofre ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def cofre_cluster(work: Path) -> Iterator[tuple[dict[str, str], Path]]:
    data_dir = work / "cofre-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    cofre = str(Path(sys.executable).parent / "cofre")
    proc = subprocess.Popen(
        [
            cofre,
            "local",
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
            "--nodes",
            "4",
            "--replication-factor",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    env = dict(os.environ)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while "COFRE_TOKEN" not in env or "COFRE_MANAGER" not in env:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("bench: cofre local up did not start")
        key, _, value = line.strip().partition("=")
        if key in ("COFRE_MANAGER", "COFRE_CA", "COFRE_TOKEN"):
            env[key] = value
    try:
        yield env, data_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def service_peaks(data_dir: Path) -> dict[str, int]:
    state = json.loads((data_dir / "state.json").read_text())
    pids: dict[str, int] = state["pids"]
    peaks: dict[str, int] = {}
    for role, pid in pids.items():
        key = "node" if role.startswith("node") else role
        peaks[key] = max(peaks.get(key, 0), peak_rss_of(int(pid)))
    return peaks


def bench_cofre(work: Path, big: Path, small: Path) -> list[Result]:
    cofre = str(Path(sys.executable).parent / "cofre")
    results = []
    restore = work / "cofre-restore"
    shutil.rmtree(restore, ignore_errors=True)
    restore.mkdir(parents=True)
    with cofre_cluster(work) as (env, data_dir):
        size = big.stat().st_size
        drop_caches()
        t, rss = run_timed([cofre, "put", str(big), "--name", "big"], env=env)
        results.append(Result("cofre", "1 file backup", t, size, 1, {"cli": rss}))
        drop_caches()
        t, rss = run_timed([cofre, "get", "big", "-o", str(restore / "big")], env=env)
        results.append(Result("cofre", "1 file restore", t, size, 1, {"cli": rss}))
        if sha256_file(restore / "big") != sha256_file(big):
            raise SystemExit("bench: cofre restored a different big file")
        drop_caches()
        t, rss = run_timed([cofre, "put", str(big), "--name", "big"], env=env)
        results.append(Result("cofre", "1 file backup again", t, size, 1, {"cli": rss}))

        files = files_under(small)
        total = sum(p.stat().st_size for p in files)
        drop_caches()
        t, rss = run_timed([cofre, "put", "small"], env=env, cwd=small.parent)
        results.append(Result("cofre", "small files backup", t, total, len(files), {"cli": rss}))
        drop_caches()
        t, rss = run_timed([cofre, "put", "small"], env=env, cwd=small.parent)
        results.append(
            Result("cofre", "small files backup again", t, total, len(files), {"cli": rss})
        )
        drop_caches()
        t, rss = run_timed([cofre, "get", "--prefix", "small/", "-o", str(restore)], env=env)
        results.append(Result("cofre", "small files restore", t, total, len(files), {"cli": rss}))
        if digest_tree(restore / "small") != digest_tree(small):
            raise SystemExit("bench: cofre restored different small files")
        peaks = service_peaks(data_dir)
    for r in results:
        r.peak_rss.update(peaks)
    shutil.rmtree(restore)
    return results


# --- restic ---------------------------------------------------------------------------------


def ensure_restic() -> str | None:
    found = shutil.which("restic")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "restic"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return shutil.which("restic")


def bench_restic(restic: str, work: Path, big: Path, small: Path) -> list[Result]:
    repo = work / "restic-repo"
    restore = work / "restic-restore"
    for d in (repo, restore):
        shutil.rmtree(d, ignore_errors=True)
    env = dict(
        os.environ,
        RESTIC_REPOSITORY=str(repo),
        RESTIC_PASSWORD="bench",
        RESTIC_CACHE_DIR=str(work / "restic-cache"),
    )
    run_timed([restic, "init"], env=env)
    results = []
    size = big.stat().st_size
    drop_caches()
    t, rss = run_timed([restic, "backup", "--tag", "big", str(big)], env=env)
    results.append(Result("restic", "1 file backup", t, size, 1, {"cli": rss}))
    drop_caches()
    t, rss = run_timed([restic, "backup", "--tag", "big", str(big)], env=env)
    results.append(Result("restic", "1 file backup again", t, size, 1, {"cli": rss}))
    drop_caches()
    t, rss = run_timed(
        [restic, "restore", "latest", "--tag", "big", "--target", str(restore)], env=env
    )
    results.append(Result("restic", "1 file restore", t, size, 1, {"cli": rss}))
    files = files_under(small)
    total = sum(p.stat().st_size for p in files)
    drop_caches()
    t, rss = run_timed([restic, "backup", "--tag", "small", "small"], env=env, cwd=small.parent)
    results.append(Result("restic", "small files backup", t, total, len(files), {"cli": rss}))
    drop_caches()
    t, rss = run_timed([restic, "backup", "--tag", "small", "small"], env=env, cwd=small.parent)
    results.append(Result("restic", "small files backup again", t, total, len(files), {"cli": rss}))
    drop_caches()
    t, rss = run_timed(
        [restic, "restore", "latest", "--tag", "small", "--target", str(restore / "s")], env=env
    )
    results.append(Result("restic", "small files restore", t, total, len(files), {"cli": rss}))
    for d in (repo, restore):
        shutil.rmtree(d, ignore_errors=True)
    return results


# --- report ---------------------------------------------------------------------------------


def mib(n: int) -> str:
    return f"{n / 2**20:.0f}"


def table(results: list[Result]) -> str:
    by = {(r.system, r.workload): r for r in results}
    lines = [
        "| workload | system | MB/s | files/s | peak RSS MiB (cli / manager / node) "
        "| cofre ÷ limit | cofre ÷ restic |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for workload in (
        "1 file backup",
        "1 file backup again",
        "1 file restore",
        "small files backup",
        "small files backup again",
        "small files restore",
    ):
        for system in ("cofre", "limit", "restic"):
            r = by.get((system, workload))
            if r is None:
                continue
            rss = " / ".join(
                mib(r.peak_rss[k]) if k in r.peak_rss else "-" for k in ("cli", "manager", "node")
            )
            # files/s says nothing about one file.
            files_s = f"{r.files_s:.0f}" if r.nfiles > 1 else "-"
            ratios = ["", ""]
            if system == "cofre":
                for i, peer in enumerate(("limit", "restic")):
                    other = by.get((peer, workload))
                    if other:
                        ratios[i] = f"{r.mb_s / other.mb_s:.2f}"
            lines.append(
                f"| {workload} | {system} | {r.mb_s:.1f} | {files_s} | {rss} "
                f"| {ratios[0]} | {ratios[1]} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--file-kib", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    big, small = make_data(work, args.big_mib, args.files, args.file_kib)
    load_before = os.getloadavg()[0]
    cached = drop_caches()
    results: list[Result] = []
    results += limit_big(big, work / "limit-big")
    results += limit_small(small, work / "limit-small")
    results += limit_again(big, small)
    results += bench_cofre(work, big, small)
    restic = ensure_restic()
    if restic:
        results += bench_restic(restic, work, big, small)
    version = (
        subprocess.run([restic, "version"], capture_output=True, text=True).stdout.strip()
        if restic
        else "restic not installed"
    )
    load_after = os.getloadavg()[0]
    report = f"""# Benchmarks

Produced by `make bench` (`python bench/run.py`) on {time.strftime("%Y-%m-%d")}:
{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, {version}.
Workloads: one file of {args.big_mib} MiB; {args.files} files of {args.file_kib} KiB. All on one
disk (`{work}`), page cache dropped before every run: {"yes" if cached else "no (not permitted)"}.

- **cofre**: `cofre local up` with 4 storage nodes, replication factor 2, every process on this
  machine; `cofre put` and `cofre get` as a user runs them.
- **limit**: what the disk allows. Backup: the same bytes written twice (F=2 stores two
  copies); restore: read once and written once; both made durable with the fewest syncs possible
  (one fsync for the big file, one filesystem sync at the end for the small files). Backup
  again (unchanged data): the bytes read once.
- **restic**: `restic backup` / `restic restore` to a local repository (one copy, encrypted and
  deduplicated).

"Again" rows back the same data up a second time, unchanged: cofre reads and hashes every
byte and sends only what is not stored yet (nothing here), then records new versions; restic
skips files whose metadata is unchanged since its last snapshot without reading them.

MB/s counts the user's bytes (not the copies). Peak RSS is the largest resident set of each
process role during the run. Load average (1 min) before / after the run:
{load_before:.1f} / {load_after:.1f}; other work on a shared machine moves every number, the
limit's included.

{table(results)}
"""
    args.report.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
