"""Benchmark: cofre against the disk's physical limit, restic and SeaweedFS, in one run.

    python bench/run.py [--big-mib 1024] [--files 10000] [--file-kib 4] [--skip SYSTEM ...]

Measures backing up and restoring one large file and many small files, and backing the small
files up again unchanged, through a real `cofre local up` (4 nodes, replication factor 2); the
same bytes written twice and synced (what F=2 must do at least); restic (Debian's package) with
a local repository; and SeaweedFS (1 master, 4 volume servers, a filer, replication 001, fsync
on), all on the same disk. Writes docs/benchmarks.md and prints it. The pure parts (table,
ratios, targets, /proc parsing) are in bench/tables.py.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables
from tables import COFRE, LIMIT, RESTIC, SEAWEED, Result

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 16 * 1024 * 1024
PROFILE_BEGIN = "<!-- profile: written by `make profile` (bench/profile.py) -->"
PROFILE_END = "<!-- end of profile -->"
# seconds a server gets to answer after it was started
START_TIMEOUT_S = 120.0


def run_timed(
    cmd: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[float, int, float]:
    """Run ``cmd``; return (seconds, its peak RSS in bytes (the kernel's VmHWM at exit, as wait4
    reports it), its CPU seconds). Fails loudly on non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode(errors="replace")  # until it exits: no pipe stall
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(cmd[:3])} failed with {proc.returncode}: {stderr.strip()[-800:]}"
        )
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def drop_caches() -> bool:
    """Restores read from disk, not from the page cache, where the kernel lets us."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


class Servers:
    """The server processes of one system under test, by name: their peak RSS per workload
    (VmHWM is reset before each one through clear_refs, where the kernel lets us)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def reset_peaks(self) -> None:
        for pid in self.pids.values():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5\n")

    def cpu_seconds(self) -> float:
        """CPU seconds all of them used so far."""
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in self.pids.values():
            with contextlib.suppress(OSError):
                total += tables.parse_stat_cpu(Path(f"/proc/{pid}/stat").read_text(), ticks=ticks)
        return total

    def peaks(self) -> dict[str, int]:
        out = {}
        for name, pid in self.pids.items():
            try:
                out[name] = tables.parse_vmhwm(Path(f"/proc/{pid}/status").read_text())
            except OSError:
                out[name] = 0
        return out


def step(
    system: str,
    workload: str,
    cmd: list[str],
    *,
    nbytes: int,
    nfiles: int,
    servers: Servers | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """One measured workload: caches dropped, server peaks reset, the client timed."""
    drop_caches()
    cpu_before = 0.0
    if servers:
        servers.reset_peaks()
        cpu_before = servers.cpu_seconds()
    seconds, client_rss, cpu = run_timed(cmd, env=env, cwd=cwd)
    peaks = {"cli": client_rss}
    if servers:
        peaks.update(servers.peaks())
        cpu += servers.cpu_seconds() - cpu_before
    return Result(system, workload, seconds, nbytes, nfiles, peaks, cpu)


def make_data(work: Path, big_mib: int, nfiles: int, file_kib: int) -> tuple[Path, Path]:
    big = work / "data" / "big.bin"
    small = work / "data" / "small"
    big.parent.mkdir(parents=True, exist_ok=True)
    if not big.exists() or big.stat().st_size != big_mib * 1024 * 1024:
        with big.open("wb") as f:
            left = big_mib * 1024 * 1024
            while left:
                n = min(BLOCK, left)
                f.write(os.urandom(n))
                left -= n
    if not small.exists() or len(files_under(small)) != nfiles:
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


def check_same_file(got: Path, want: Path, system: str) -> None:
    if sha256_file(got) != sha256_file(want):
        raise SystemExit(f"bench: {system} restored a different big file")


def check_same_tree(got: Path, want: Path, system: str) -> None:
    if digest_tree(got) != digest_tree(want):
        raise SystemExit(f"bench: {system} restored different small files")


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class Data:
    """The workloads' inputs and names."""

    def __init__(self, big: Path, small: Path, names: tuple[str, ...]) -> None:
        self.big = big
        self.small = small
        self.size = big.stat().st_size
        self.files = files_under(small)
        self.total = sum(p.stat().st_size for p in self.files)
        self.nfiles = len(self.files)
        (
            self.big_backup,
            self.big_restore,
            self.small_backup,
            self.small_restore,
            self.small_again,
        ) = names


# --- physical limit ------------------------------------------------------------------------


def timed(system: str, workload: str, fn: Callable[[], None], nbytes: int, nfiles: int) -> Result:
    """``fn`` run in this process, caches dropped first."""
    drop_caches()
    cpu = time.process_time()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return Result(system, workload, seconds, nbytes, nfiles, {}, time.process_time() - cpu)


def bench_limit(data: Data, out: Path) -> list[Result]:
    """What the disk allows. Backup: the bytes read once and written twice (F=2 keeps two
    copies), made durable with the fewest syncs (one fsync per big copy, one filesystem sync
    for the small files). Restore: read once, written once, synced. Again: the bytes read once
    (the least a backup that looks at the bytes must do; one that trusts metadata may beat it)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    def big_backup() -> None:
        copies = [open(out / f"copy{i}", "wb") for i in range(2)]  # noqa: SIM115
        with data.big.open("rb") as src:
            while block := src.read(BLOCK):
                for c in copies:
                    c.write(block)
        for c in copies:
            c.flush()
            os.fsync(c.fileno())
            c.close()

    def big_restore() -> None:
        with (out / "copy0").open("rb") as src, (out / "restored").open("wb") as dst:
            while block := src.read(BLOCK):
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())

    def small_backup() -> None:
        for copy in range(2):
            (out / f"c{copy}").mkdir()
        for i, p in enumerate(data.files):
            content = p.read_bytes()
            for copy in range(2):
                (out / f"c{copy}" / f"{i:05d}").write_bytes(content)
        os.sync()

    def small_restore() -> None:
        (out / "r").mkdir()
        for i in range(data.nfiles):
            (out / "r" / f"{i:05d}").write_bytes((out / "c0" / f"{i:05d}").read_bytes())
        os.sync()

    def small_again() -> None:
        for p in data.files:
            p.read_bytes()

    results = [
        timed(LIMIT, data.big_backup, big_backup, data.size, 1),
        timed(LIMIT, data.big_restore, big_restore, data.size, 1),
        timed(LIMIT, data.small_backup, small_backup, data.total, data.nfiles),
        timed(LIMIT, data.small_restore, small_restore, data.total, data.nfiles),
        timed(LIMIT, data.small_again, small_again, data.total, data.nfiles),
    ]
    shutil.rmtree(out)
    return results


# --- cofre ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cofre_bin() -> str:
    return str(Path(sys.executable).parent / "cofre")


@contextlib.contextmanager
def cofre_cluster(work: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """`cofre local up` with 4 nodes and F=2 in ``work``/cofre-data: (client env, data dir)."""
    data_dir = work / "cofre-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    proc = subprocess.Popen(
        [
            cofre_bin(),
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
    deadline = time.monotonic() + START_TIMEOUT_S
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
        shutil.rmtree(data_dir, ignore_errors=True)


def cofre_servers(data_dir: Path) -> Servers:
    state = json.loads((data_dir / "state.json").read_text())
    return Servers({role: int(pid) for role, pid in state["pids"].items()})


def cofre_stored(data_dir: Path) -> dict[str, int]:
    """Bytes on disk under each node's data dir (chunks, and their metadata)."""
    nodes = data_dir / "nodes"
    return {d.name: tree_bytes(d) for d in sorted(nodes.iterdir()) if d.is_dir()}


def bench_cofre(
    work: Path, data: Data, stored: list[tuple[str, Mapping[str, int]]]
) -> list[Result]:
    cofre = cofre_bin()
    restore = work / "cofre-restore"
    shutil.rmtree(restore, ignore_errors=True)
    restore.mkdir(parents=True)
    results = []
    with cofre_cluster(work) as (env, data_dir):
        servers = cofre_servers(data_dir)

        def run(workload: str, cmd: list[str], *, nbytes: int, nfiles: int) -> None:
            results.append(
                step(
                    COFRE,
                    workload,
                    cmd,
                    nbytes=nbytes,
                    nfiles=nfiles,
                    servers=servers,
                    env=env,
                    cwd=data.small.parent,
                )
            )

        run(
            data.big_backup,
            [cofre, "put", str(data.big), "--name", "big"],
            nbytes=data.size,
            nfiles=1,
        )
        stored.append((data.big_backup, cofre_stored(data_dir)))
        run(
            data.big_restore,
            [cofre, "get", "big", "-o", str(restore / "big")],
            nbytes=data.size,
            nfiles=1,
        )
        check_same_file(restore / "big", data.big, COFRE)
        small = [cofre, "put", "small"]
        run(data.small_backup, small, nbytes=data.total, nfiles=data.nfiles)
        stored.append((data.small_backup, cofre_stored(data_dir)))
        get = [cofre, "restore", "latest", "--target", str(restore)]
        run(data.small_restore, get, nbytes=data.total, nfiles=data.nfiles)
        check_same_tree(restore / "small", data.small, COFRE)
        run(data.small_again, small, nbytes=data.total, nfiles=data.nfiles)
        stored.append((data.small_again, cofre_stored(data_dir)))
    shutil.rmtree(restore)
    return results


# --- restic ---------------------------------------------------------------------------------


def ensure_restic() -> str | None:
    """Debian's restic, installed when missing (as root)."""
    found = shutil.which("restic")
    if found or os.geteuid() != 0:
        return found
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    install = ["apt-get", "install", "-y", "-q", "restic"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(install, check=False, env=env, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)
        subprocess.run(install, check=False, env=env, **quiet)
    return shutil.which("restic")


def bench_restic(restic: str, work: Path, data: Data) -> list[Result]:
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

    def run(workload: str, cmd: list[str], *, nbytes: int, nfiles: int) -> Result:
        return step(
            RESTIC, workload, cmd, nbytes=nbytes, nfiles=nfiles, env=env, cwd=data.small.parent
        )

    big_restore = [restic, "restore", "latest", "--tag", "big", "--target", str(restore / "b")]
    small_backup = [restic, "backup", "--tag", "small", "small"]
    small_restore = [restic, "restore", "latest", "--tag", "small", "--target", str(restore / "s")]
    results = [
        run(
            data.big_backup,
            [restic, "backup", "--tag", "big", str(data.big)],
            nbytes=data.size,
            nfiles=1,
        ),
        run(data.big_restore, big_restore, nbytes=data.size, nfiles=1),
        run(data.small_backup, small_backup, nbytes=data.total, nfiles=data.nfiles),
        run(data.small_restore, small_restore, nbytes=data.total, nfiles=data.nfiles),
        run(data.small_again, small_backup, nbytes=data.total, nfiles=data.nfiles),
    ]
    check_same_file(restore / "b" / data.big.relative_to("/"), data.big, RESTIC)
    check_same_tree(restore / "s" / "small", data.small, RESTIC)
    for d in (repo, restore):
        shutil.rmtree(d, ignore_errors=True)
    return results


def restic_version(restic: str | None) -> str:
    if not restic:
        return "restic not installed"
    out = subprocess.run([restic, "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


# --- SeaweedFS ------------------------------------------------------------------------------

WEED_VOLUMES = 4


def ensure_weed() -> str | None:
    """SeaweedFS's `weed`, built once from the Go module proxy (bench/build_weed.sh)."""
    out = subprocess.run(
        ["bash", str(ROOT / "bench" / "build_weed.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        print("bench: SeaweedFS could not be built; it is left out", file=sys.stderr)
        return None
    return lines[-1]


def port_pair() -> int:
    """A port P with P+10000 free too: SeaweedFS serves gRPC on P+10000, and its tools derive
    that port from the HTTP one."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise SystemExit("bench: no free port pair for SeaweedFS")


def wait_http(url: str, *, ok: Callable[[bytes], bool] = lambda _: True) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if ok(resp.read()):
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not answer in {START_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def weed_cluster(weed: str, work: Path) -> Iterator[tuple[str, str, Path, Servers]]:
    """1 master, 4 volume servers, a filer; fsync and replication 001 on /bench/ through the
    filer's path rule. Yields (filer URL, master address, data dir, servers)."""
    root = work / "weed-data"
    shutil.rmtree(root, ignore_errors=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = root / "logs"
    logs.mkdir(parents=True)
    ip = "127.0.0.1"

    def start(name: str, args: list[str]) -> None:
        log = (logs / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(
            [weed, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    try:
        mport = port_pair()
        master = f"{ip}:{mport}"
        (root / "master").mkdir()
        start(
            "master",
            [
                "master",
                f"-ip={ip}",
                f"-ip.bind={ip}",
                f"-port={mport}",
                f"-mdir={root / 'master'}",
                "-defaultReplication=001",
                "-volumeSizeLimitMB=1024",
            ],
        )
        wait_http(f"http://{master}/cluster/status")
        for i in range(WEED_VOLUMES):
            vport = port_pair()
            vdir = root / f"volume-{i}"
            vdir.mkdir()
            start(
                f"volume-{i}",
                [
                    "volume",
                    f"-ip={ip}",
                    f"-ip.bind={ip}",
                    f"-port={vport}",
                    f"-dir={vdir}",
                    "-max=16",
                    f"-master={master}",
                ],
            )

        def all_volumes(body: bytes) -> bool:
            return body.count(b'"Url"') >= WEED_VOLUMES

        wait_http(f"http://{master}/dir/status", ok=all_volumes)
        fport = port_pair()
        filer = f"{ip}:{fport}"
        (root / "filer").mkdir()
        start(
            "filer",
            [
                "filer",
                f"-ip={ip}",
                f"-ip.bind={ip}",
                f"-port={fport}",
                f"-master={master}",
                "-defaultReplicaPlacement=001",
                f"-defaultStoreDir={root / 'filer'}",
            ],
        )
        wait_http(f"http://{filer}/?pretty=y")
        rule = "fs.configure -locationPrefix=/bench/ -replication=001 -fsync -apply\n"
        shell = subprocess.run(
            [weed, "shell", f"-master={master}", f"-filer={filer}"],
            input=rule,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if shell.returncode != 0 or not re.search(r'"fsync":\s*true', shell.stdout):
            raise SystemExit(f"bench: SeaweedFS fs.configure failed: {shell.stdout[-800:]}")
        yield f"http://{filer}", master, root, Servers({n: p.pid for n, p in procs.items()})
    finally:
        for proc in reversed(list(procs.values())):
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def curl_config(filer: str, data: Data, target: Path) -> str:
    """One curl config fetching every small file from the filer into ``target``."""
    lines = []
    for p in data.files:
        rel = p.relative_to(data.small.parent).as_posix()
        lines.append(f'url = "{filer}/bench/{rel}"\noutput = "{target / rel}"')
    return "\n".join(lines) + "\n"


def bench_seaweed(weed: str, work: Path, data: Data) -> list[Result]:
    restore = work / "weed-restore"
    shutil.rmtree(restore, ignore_errors=True)
    restore.mkdir(parents=True)
    results = []
    with weed_cluster(weed, work) as (filer, _master, _root, servers):

        def run(workload: str, cmd: list[str], *, nbytes: int, nfiles: int) -> None:
            results.append(
                step(
                    SEAWEED,
                    workload,
                    cmd,
                    nbytes=nbytes,
                    nfiles=nfiles,
                    servers=servers,
                    cwd=data.small.parent,
                )
            )

        curl = ["curl", "-sSf", "--create-dirs"]
        copy = [weed, "filer.copy", "-replication=001"]
        run(
            data.big_backup,
            [*copy, str(data.big), f"{filer}/bench/big/"],
            nbytes=data.size,
            nfiles=1,
        )
        big_out = restore / "big.bin"
        run(
            data.big_restore,
            [*curl, "-o", str(big_out), f"{filer}/bench/big/{data.big.name}"],
            nbytes=data.size,
            nfiles=1,
        )
        check_same_file(big_out, data.big, SEAWEED)
        run(
            data.small_backup,
            [*copy, "small", f"{filer}/bench/"],
            nbytes=data.total,
            nfiles=data.nfiles,
        )
        config = work / "weed-curl.conf"
        config.write_text(curl_config(filer, data, restore))
        fetch = [*curl, "--parallel", "--parallel-max", "16", "-K", str(config)]
        run(data.small_restore, fetch, nbytes=data.total, nfiles=data.nfiles)
        check_same_tree(restore / "small", data.small, SEAWEED)
        # -check.size: files of the same size as the stored ones are skipped, SeaweedFS's
        # closest to skipping unchanged files.
        again = [*copy, "-check.size", "small", f"{filer}/bench/"]
        run(data.small_again, again, nbytes=data.total, nfiles=data.nfiles)
    shutil.rmtree(restore)
    return results


def weed_version(weed: str | None) -> str:
    if not weed:
        return "SeaweedFS not built"
    out = subprocess.run([weed, "version"], capture_output=True, text=True, check=False)
    # "version 30GB 4.53  linux amd64": the release and the volume size limit it was built for
    release = re.search(r"\b(\d+\.\d+)\b", out.stdout)
    return f"SeaweedFS {release.group(1) if release else out.stdout.strip()}"


# --- report ---------------------------------------------------------------------------------


def placement_section() -> str:
    """bench/placement.py's table, when that module exists."""
    path = ROOT / "bench" / "placement.py"
    if not path.exists():
        return ""
    spec = importlib.util.spec_from_file_location("cofre_bench_placement", path)
    if spec is None or spec.loader is None:
        return ""
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return "## Placement at scale\n\n" + str(module.placement_table()).strip() + "\n"


def kept_profile(report: Path) -> str:
    """The profile section `make profile` wrote into the report last time, kept as it is."""
    if not report.exists():
        return ""
    text = report.read_text()
    start, end = text.find(PROFILE_BEGIN), text.find(PROFILE_END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(PROFILE_END)] + "\n"


def git_commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        # The report itself is rewritten by every run: not a change to what is measured.
        [
            "git",
            "-C",
            str(ROOT),
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!docs/benchmarks.md",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() + (" (with local changes)" if dirty.stdout.strip() else "")


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{platform.node()}, {os.cpu_count()} cores ({cpu}), {mem / 2**30:.0f} GiB memory"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--file-kib", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--skip", action="append", default=[], choices=[LIMIT, RESTIC, SEAWEED, COFRE]
    )
    args = parser.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = tables.workload_names(args.big_mib, args.files, args.file_kib)
    # Built first: a cold build takes long and must not run while anything is measured.
    weed = ensure_weed() if SEAWEED not in args.skip else None
    restic = ensure_restic() if RESTIC not in args.skip else None
    big, small = make_data(work, args.big_mib, args.files, args.file_kib)
    data = Data(big, small, names)
    load_before = os.getloadavg()
    cached = drop_caches()
    results: list[Result] = []
    stored: list[tuple[str, Mapping[str, int]]] = []
    if LIMIT not in args.skip:
        results += bench_limit(data, work / "limit")
    if restic:
        results += bench_restic(restic, work, data)
    if weed:
        results += bench_seaweed(weed, work, data)
    if COFRE not in args.skip:
        results += bench_cofre(work, data, stored)
    load_after = os.getloadavg()
    verdicts = tables.verdicts(results, stored, names)
    placement = placement_section()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = f"""# Benchmarks

Produced by `make bench` (`python bench/run.py`) on {when}
at commit {git_commit()}: {machine()}; Python {platform.python_version()}, {restic_version(restic)},
{weed_version(weed)}. Workloads: one file of {args.big_mib} MiB of random bytes; {args.files:,}
files of {args.file_kib} KiB. All on one disk (`{work}`); page cache dropped before every step:
{"yes" if cached else "no (not permitted)"}. Load average (1 / 5 min) before the run
{load_before[0]:.1f} / {load_before[1]:.1f}, after it {load_after[0]:.1f} / {load_after[1]:.1f}:
other work on a shared machine moves every number, the limit's included.

- **cofre**: `cofre local up` with 4 storage nodes, replication factor 2, every process on this
  machine; `cofre put FILE`, `cofre get NAME`, `cofre put DIR`, `cofre get --prefix DIR/` as a
  user runs them. Again: `cofre put DIR` once more.
- **limit**: what the disk allows. Backup: the bytes read once and written twice (F=2 keeps two
  copies), made durable with the fewest syncs possible (one fsync per big copy, one filesystem
  sync at the end for the small files). Restore: read once, written once, synced. Again: the
  bytes read once, the least a backup that looks at the bytes does.
- **restic**: `restic backup` / `restic restore` to a local repository (one copy, encrypted and
  deduplicated). Again: `restic backup` once more, which skips files whose metadata is unchanged
  since its last snapshot without reading them.
- **SeaweedFS**: 1 master, {WEED_VOLUMES} volume servers and a filer (leveldb store), replication
  001 (two copies on two servers) and fsync on for `/bench/` through the filer's path rule
  (`fs.configure -fsync`). `weed filer.copy` backs up (its defaults: 8 files and 8 chunks of
  4 MiB at once); the filer's HTTP restores, the big file with `curl -o`, the small ones with one
  `curl --parallel --parallel-max 16` for all files. Again: `weed filer.copy -check.size`, which
  skips files whose size matches the stored one.

MB/s counts the user's bytes (not the copies). CPU s: CPU seconds (user + system) of the
client and every server process during the step, steadier than wall time on a busy machine.
Peak RSS is each process's VmHWM during that step alone (reset through /proc/PID/clear_refs
before it): `cli` is the client (restic, `weed filer.copy`, curl, the `cofre` CLI), then each
server process.

{tables.table(results, names)}

## Stored bytes across cofre's nodes

Bytes on disk under each node's data dir (chunks and their metadata) after each backup.

{tables.stored_table(stored)}

## Targets

{tables.verdict_table(verdicts)}

{placement}
{kept_profile(args.report)}"""
    args.report.write_text(report.rstrip() + "\n")
    print(report)


if __name__ == "__main__":
    main()
