"""Faults measured as figures: real `cofre local up` clusters, the real CLI, real failures.

    python bench/faults.py [--runs-scale 1.0] [--only NAME ...] [--report docs/reliability.md]

Every scenario backs up files with `cofre put`, breaks something at a random moment (SIGKILL of
a node or the manager, a flipped byte, a wiped store, a full disk, many clients at once, puts
racing `rm` and `gc`), waits until `local up` has restarted what it killed, then verifies every
committed version: each one is restored with `cofre get` and its sha256 compared with what was
put, and `cofre fsck --json` tells which committed versions miss a chunk. Writes one table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cofre.storage_node.packs import Location
from cofre.storage_node.store import stored_chunks

ROOT = Path(__file__).resolve().parent.parent
COFRE = [str(Path(sys.executable).parent / "cofre")]
START_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 90.0

# Exit codes a put may end with when a process it talks to is killed under it (see
# cofre/cli/exitcodes.py): unavailable, not enough nodes, outcome unknown. Anything else fails
# unexpectedly.
KILL_EXPECTED = {3, 5, 10}
NO_SPACE = 9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


def poll(
    fn: Callable[[], Any],
    *,
    until: Callable[[Any], bool],
    what: str,
    timeout_s: float,
    every_s: float = 0.2,
) -> Any:
    """``fn()`` again every ``every_s`` until ``until`` holds; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"faults: timed out waiting for {what}: {value!r}"[:2000])
        time.sleep(every_s)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cluster:
    """One `cofre local up` in a data dir; the CLI pointed at it."""

    def __init__(self, data_dir: Path, *, nodes: int, factor: int, extra: list[str]) -> None:
        self.data_dir = data_dir
        self.nodes = nodes
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [*COFRE, "local", "up", "--nodes", str(nodes), "--data-dir", str(data_dir)]
        argv += ["--port", str(free_port()), "--replication-factor", str(factor), *extra]
        self.log = (data_dir.parent / f"{data_dir.name}-local-up.err").open("ab")
        base = {k: v for k, v in os.environ.items() if not k.startswith("COFRE_")}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, env=base)
        self.env = dict(base, COFRE_DATA_DIR=str(data_dir))
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while "COFRE_TOKEN" not in self.env or "COFRE_MANAGER" not in self.env:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"faults: cofre local up did not start in {data_dir}")
            key, _, value = line.strip().partition("=")
            if key in ("COFRE_MANAGER", "COFRE_CA", "COFRE_TOKEN"):
                self.env[key] = value

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "state.json").read_text())
        return data

    def cli(self, *args: str, cwd: Path | None = None, timeout: float = 600.0) -> Run:
        p = subprocess.run(
            [*COFRE, *args], env=self.env, cwd=cwd, capture_output=True, timeout=timeout
        )
        return Run(
            p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        )

    def put_bg(self, src: Path, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*COFRE, "put", str(src), "--name", name, "--json"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def all_ready(self) -> None:
        def ready() -> bool:
            r = self.cli("status", "--json", timeout=60)
            if r.code != 0:
                return False
            nodes = r.json()["nodes"]
            return len(nodes) == self.nodes and all(n["ready"] for n in nodes)

        pids = lambda: self.state()["pids"]  # noqa: E731
        poll(pids, until=lambda p: all(v for v in p.values()), what="every pid", timeout_s=60)
        poll(ready, until=bool, what="every node ready", timeout_s=READY_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@contextmanager
def cluster(
    work: Path, name: str, *, nodes: int = 4, factor: int = 2, extra: list[str] | None = None
) -> Iterator[Cluster]:
    c = Cluster(work / name, nodes=nodes, factor=factor, extra=extra or [])
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Row:
    """One scenario's figures."""

    scenario: str
    runs: int = 0
    ops: int = 0
    expected_failures: int = 0
    unexpected_failures: list[str] = field(default_factory=list)
    versions_checked: int = 0
    bytes_lost: int = 0
    corrupt_restores: int = 0
    missing_chunk_versions: int = 0
    full_copies: str = "-"
    notes: list[str] = field(default_factory=list)

    @property
    def zero_goals(self) -> bool:
        return (
            self.bytes_lost == 0 and self.corrupt_restores == 0 and self.missing_chunk_versions == 0
        )

    def op(self, code: int, *, expected: set[int], what: str, err: str = "") -> bool:
        """Count one operation's outcome; True when it succeeded."""
        self.ops += 1
        if code == 0:
            return True
        if code in expected:
            self.expected_failures += 1
        else:
            said = err.strip().splitlines()[-1:] if err else []
            self.unexpected_failures.append(f"{what}: exit {code} {' '.join(said)}".strip())
        return False


@dataclass
class Put:
    name: str
    sha: str
    size: int
    ok: bool
    version: int | None = None
    started: float = 0.0


def put_version(out: str) -> int | None:
    try:
        results = json.loads(out)["results"]
    except (ValueError, KeyError):
        return None
    return int(results[0]["version"]) if results else None


def verify(
    c: Cluster, row: Row, puts: list[Put], tmp: Path, *, must_list: Callable[[Put], bool]
) -> None:
    """Restore every listed version and compare it with what was put; count committed versions
    gone (bytes lost) and fsck's versions that miss a chunk."""
    listed = c.cli("ls", "--versions", "--json")
    if listed.code != 0:
        row.unexpected_failures.append(f"ls after the faults: exit {listed.code}")
        return
    versions = {(v["name"], int(v["version"])) for v in listed.json()}
    by_version = {(p.name, p.version): p for p in puts if p.ok and p.version is not None}
    shas: dict[str, set[str]] = {}
    for p in puts:
        shas.setdefault(p.name, set()).add(p.sha)
    for p in by_version.values():
        if must_list(p) and (p.name, p.version) not in versions:
            row.bytes_lost += p.size
    out = tmp / "restored"
    for name, version in sorted(versions):
        if name not in shas:
            continue  # not this scenario's
        row.versions_checked += 1
        got = c.cli("get", name, "--version", str(version), "-o", str(out), "--force")
        known = by_version.get((name, version))
        if got.code != 0:
            row.corrupt_restores += 1
            row.unexpected_failures.append(f"get {name} v{version}: exit {got.code}")
            if known:
                row.bytes_lost += known.size
            continue
        sha = sha256_file(out)
        if (known and sha != known.sha) or sha not in shas[name]:
            row.corrupt_restores += 1
        out.unlink()
    fsck = c.cli("fsck", "--json")
    if fsck.code not in (0, 1):
        row.unexpected_failures.append(f"fsck: exit {fsck.code}")
        return
    for f in fsck.json()["files"]:
        if any(ch["status"] == "missing" for ch in f["chunks"]):
            row.missing_chunk_versions += 1


# --- scenarios ------------------------------------------------------------------------------


def node_kill(work: Path, runs: int) -> Row:
    """SIGKILL a random storage node at a random moment of a put; local up restarts it."""
    row = Row("SIGKILL a storage node mid-put")
    puts: list[Put] = []
    with cluster(work, "node-kill") as c:
        src = random_file(work / "src-node-kill", 24 << 20)
        start = time.monotonic()
        first = c.cli("put", str(src), "--name", "node-kill/warmup", "--json")
        span = time.monotonic() - start
        puts.append(Put("node-kill/warmup", sha256_file(src), src.stat().st_size, first.code == 0,
                        put_version(first.out)))  # fmt: skip
        for i in range(runs):
            row.runs += 1
            random_file(src, random.randint(4 << 20, 24 << 20))
            name = f"node-kill/{i}"
            proc = c.put_bg(src, name)
            time.sleep(random.uniform(0, span * 1.2))
            victim = random.choice([r for r in c.state()["pids"] if r.startswith("node-")])
            pid = c.state()["pids"][victim]
            if pid:
                os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=600)
            ok = row.op(
                proc.returncode, expected=KILL_EXPECTED, what=f"put {name}", err=err.decode()
            )
            puts.append(Put(name, sha256_file(src), src.stat().st_size, ok,
                            put_version(out.decode())))  # fmt: skip
            c.all_ready()
        verify(c, row, puts, work, must_list=lambda p: True)
    return row


def chunk_files(c: Cluster) -> set[Path]:
    """Every file in every node's chunk store (a put's first chunk shows up here)."""
    return {p for d in (c.data_dir / "nodes").glob("*/chunks") for p in d.rglob("*") if p.is_file()}


def transfer_span(c: Cluster, src: Path, name: str) -> tuple[Run, float]:
    """Put ``src`` and measure how long it transfers: from its first chunk file on a node to
    its end."""
    before = chunk_files(c)
    proc = c.put_bg(src, name)
    poll(
        lambda: proc.poll() is not None or bool(chunk_files(c) - before),
        until=bool,
        what="the put's first chunk on a node",
        timeout_s=120,
        every_s=0.01,
    )
    seen = time.monotonic()
    out, err = proc.communicate(timeout=600)
    return Run(proc.returncode, out.decode(), err.decode()), time.monotonic() - seen


def kill_manager(c: Cluster) -> int:
    """SIGKILL the manager's process (its pid from the state file); its pid."""
    pid = int(c.state()["pids"]["manager"])
    if pid:
        os.kill(pid, signal.SIGKILL)
    return pid


def manager_kill(work: Path, runs: int) -> Row:
    """SIGKILL the manager at a random moment of a put's transfer; local up restarts it; every
    committed version restores and fsck must then be clean. Counts the puts the kill really
    cut (still running when the manager died) apart from those that had ended before it."""
    row = Row("SIGKILL the manager mid-put")
    puts: list[Put] = []
    cut = before_kill = 0
    with cluster(work, "manager-kill") as c:
        src = random_file(work / "src-manager-kill", 16 << 20)
        first, span = transfer_span(c, src, "manager-kill/warmup")
        puts.append(Put("manager-kill/warmup", sha256_file(src), src.stat().st_size,
                        first.code == 0, put_version(first.out)))  # fmt: skip
        for i in range(runs):
            row.runs += 1
            size = random.randint(1 << 20, 16 << 20)
            random_file(src, size)
            name = f"manager-kill/{i}"
            stored_before = chunk_files(c)
            proc = c.put_bg(src, name)
            # Mid-transfer: once its first chunk is on a node, then a random moment of about
            # the time the rest of a put this size takes.
            poll(
                lambda: proc.poll() is not None or bool(chunk_files(c) - stored_before),  # noqa: B023
                until=bool,
                what="the put's first chunk on a node",
                timeout_s=120,
                every_s=0.01,
            )
            time.sleep(random.uniform(0, span * size / (16 << 20)))
            running = proc.poll() is None
            killed = kill_manager(c)
            cut += running
            before_kill += not running
            out, err = proc.communicate(timeout=600)
            ok = row.op(
                proc.returncode, expected=KILL_EXPECTED, what=f"put {name}", err=err.decode()
            )
            puts.append(Put(name, sha256_file(src), size, ok, put_version(out.decode())))
            # The next kill must hit the restarted manager, never a stale pid.
            poll(
                lambda: c.state()["pids"]["manager"],
                until=lambda pid: pid not in (0, killed),  # noqa: B023
                what="the manager restarted",
                timeout_s=READY_TIMEOUT_S,
            )
            c.all_ready()
        verify(c, row, puts, work, must_list=lambda p: True)
        fsck = c.cli("fsck", "--json")
        if fsck.code != 0:
            row.unexpected_failures.append("fsck not clean after the manager kills")
    row.notes.append(
        f"{cut} of {row.runs} puts cut mid-transfer by the kill, {before_kill} ended before it"
    )
    return row


def stored_copies(c: Cluster, node: str) -> list[tuple[str, Location]]:
    """The chunks a node holds on disk, packed or a file each, and where their bytes are."""
    return sorted(stored_chunks(c.data_dir / "nodes" / node).items())


def scrub_findings(c: Cluster, node: str) -> int:
    r = c.cli("status", "--json", timeout=60)
    if r.code != 0:
        return -1
    return next((int(n["scrub_findings"]) for n in r.json()["nodes"] if n["node_id"] == node), -1)


def bit_flip(work: Path, runs: int) -> Row:
    """One byte flipped in one stored copy: the nodes' background scrub finds it and the
    manager's repair puts a good copy back, with nobody asking."""
    row = Row("one byte flipped in a stored copy")
    row.notes.append("found by the background scrub (cycle 4 s here) and repaired unasked")
    puts: list[Put] = []
    seconds: list[float] = []
    extra = ["--node-scrub-cycle-s", "4", "--repair-lost-scan-s", "1"]
    with cluster(work, "bit-flip", nodes=3, extra=extra) as c:
        for i in range(runs):
            row.runs += 1
            src = random_file(work / f"src-flip-{i}", random.randint(1 << 20, 8 << 20))
            name = f"flip/{i}"
            r = c.cli("put", str(src), "--name", name, "--json")
            ok = row.op(r.code, expected=set(), what=f"put {name}", err=r.err)
            puts.append(Put(name, sha256_file(src), src.stat().st_size, ok, put_version(r.out)))
            nodes = sorted(c.state()["pids"].keys() - {"manager"})
            copies = [(n, h, w) for n in nodes for h, w in stored_copies(c, n)]
            node, victim, where = random.choice(copies)
            found_before = scrub_findings(c, node)
            # One byte of the chunk's bytes, in its pack or its file.
            with open(where.path, "r+b") as fh:
                fh.seek(where.offset + random.randrange(where.length))
                byte = fh.read(1)
                fh.seek(-1, os.SEEK_CUR)
                fh.write(bytes([byte[0] ^ 0xFF]))
            start = time.monotonic()

            def healed(node: str = node, found_before: int = found_before) -> bool:
                if scrub_findings(c, node) <= found_before:
                    return False
                f = c.cli("fsck", "--json")
                return f.code == 0 and f.json()["summary"]["ok"] == f.json()["summary"]["chunks"]

            try:
                poll(healed, until=bool, what=f"the scrub to find {victim}", timeout_s=180)
            except RuntimeError as exc:
                row.unexpected_failures.append(str(exc)[:200])
                continue
            seconds.append(time.monotonic() - start)
            clean = c.cli("fsck", "--verify", "--json")
            if clean.code != 0:
                row.unexpected_failures.append(f"fsck --verify after the scrub: exit {clean.code}")
        verify(c, row, puts, work, must_list=lambda p: True)
    if seconds:
        row.full_copies = f"{max(seconds):.1f} s (worst, flip to found and repaired)"
    return row


# How a store is wiped, by run: while its node runs, or while it is down and restarted well
# inside the grace period before a down node's chunks are copied (`repair.after_s`).
WIPE_MODES = ("while running", "while down, restarted after 5 s")


def store_wipe(work: Path, runs: int, *, mib: int = 128) -> Row:
    """A node's chunk store removed, by turns while it runs and while it is down (restarted
    inside the grace period); nobody asks for a repair: the manager must notice the emptied node
    and refill it. The time per GiB of what the node held until every chunk has F good copies
    again (as `fsck` finds them)."""
    row = Row("a node's store wiped")
    puts: list[Put] = []
    rates: dict[str, list[float]] = {mode: [] for mode in WIPE_MODES}
    with cluster(work, "store-wipe") as c:
        for i in range(runs):
            row.runs += 1
            mode = WIPE_MODES[i % len(WIPE_MODES)]
            for j in range(max(1, mib // 16)):
                src = random_file(work / "src-wipe", 16 << 20)
                name = f"wipe/{i}/{j}"
                r = c.cli("put", str(src), "--name", name, "--json")
                ok = row.op(r.code, expected=set(), what=f"put {name}", err=r.err)
                puts.append(Put(name, sha256_file(src), 16 << 20, ok, put_version(r.out)))
            # A node that holds something: a wiped empty store measures nothing.
            nodes = sorted(c.state()["pids"].keys() - {"manager"})
            node = random.choice([n for n in nodes if stored_copies(c, n)])
            held = sum(w.length for _, w in stored_copies(c, node))
            if mode != WIPE_MODES[0]:
                pid = c.state()["pids"][node]
                killed = c.cli("local", "kill", node, "--down-for", "5")
                if killed.code != 0:
                    row.unexpected_failures.append(f"local kill {node}: exit {killed.code}")
                    continue
                # Down (its pid gone from the state file) before its store goes.
                poll(lambda: c.state()["pids"][node], until=lambda p: p != pid,  # noqa: B023
                     what=f"{node} down", timeout_s=30)  # fmt: skip
            start = time.monotonic()
            # The chunk store: its chunk files and its packs (with their index).
            for part in ("chunks", "packs"):
                shutil.rmtree(c.data_dir / "nodes" / node / part, ignore_errors=True)

            def healthy() -> bool:
                f = c.cli("fsck", "--json")
                return f.code == 0 and f.json()["summary"]["under_replicated"] == 0

            try:
                poll(healthy, until=bool, what="every chunk at F copies", timeout_s=600)
            except RuntimeError as exc:
                row.unexpected_failures.append(f"run {i} ({mode}): {str(exc)[:200]}")
                continue
            took = time.monotonic() - start
            if held:
                rates[mode].append(took / (held / 2**30))
            c.all_ready()
        verify(c, row, puts, work, must_list=lambda p: True)
    measured = [f"{mode}: {max(r):.0f}" for mode, r in rates.items() if r]
    if measured:
        row.full_copies = (
            f"{'; '.join(measured)} s/GiB (worst; {mib} MiB put per run, no repair asked)"
        )
    return row


def fill(d: Path) -> None:
    """Write into ``d`` until its filesystem is full (what another process might do)."""
    block = b"\0" * (1 << 20)
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while os.write(fd, block):
            pass
    except OSError:
        pass  # out of space: what was wanted
    finally:
        os.close(fd)


def stored(dirs: list[Path]) -> set[str]:
    return {h for d in dirs for h in stored_chunks(d)}


def disk_full(work: Path, runs: int) -> Row:
    """Every node's data dir on a small tmpfs, filled up by another writer as soon as a put's
    first chunk reaches a node: the put fails with exit 9 (or succeeds if its chunks were all
    written by then) and nothing committed is lost."""
    row = Row("disk full mid-put (tmpfs)")
    puts: list[Put] = []
    if os.geteuid() != 0:
        row.notes.append("skipped: mounting tmpfs needs root")
        return row
    data = work / "disk-full"
    mounts = []
    for n in range(3):
        d = data / "nodes" / f"node-{n}"
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(d)], check=True)
        mounts.append(d)
    no_space = stored_big = 0
    extra = ["--placement-min-free-bytes", "0"]
    try:
        with cluster(work, "disk-full", nodes=3, extra=extra) as c:
            for i in range(runs):
                row.runs += 1
                src = random_file(work / "src-full-small", 1 << 20)
                name = f"full/{i}/small"
                r = c.cli("put", str(src), "--name", name, "--json")
                ok = row.op(r.code, expected=set(), what=f"put {name}", err=r.err)
                puts.append(Put(name, sha256_file(src), 1 << 20, ok, put_version(r.out)))
                big = random_file(work / "src-full-big", 64 << 20)
                name = f"full/{i}/big"
                before = stored(mounts)
                proc = c.put_bg(big, name)
                # Mid-put: once its first chunk shows up on a node, not before placement.
                poll(
                    lambda: proc.poll() is not None or stored(mounts) - before,  # noqa: B023
                    until=bool,
                    what="the put's first chunk on a node",
                    timeout_s=120,
                )
                for d in mounts:
                    fill(d)
                out, err = proc.communicate(timeout=600)
                ok = row.op(
                    proc.returncode, expected={NO_SPACE}, what=f"put {name}", err=err.decode()
                )
                no_space += proc.returncode == NO_SPACE
                stored_big += ok
                puts.append(Put(name, sha256_file(big), 64 << 20, ok, put_version(out.decode())))
                for d in mounts:
                    (d / "filler").unlink()
                # What the failed put stored before the disks filled is garbage now: collected,
                # or it piles up on the small disks until no node has room for the next run.
                gc = c.cli("gc", "--grace", "0", "--json")
                row.op(gc.code, expected=set(), what="gc --grace 0", err=gc.err)
                c.all_ready()
            verify(c, row, puts, work, must_list=lambda p: True)
            for p in work.glob("src-full-*"):
                p.unlink()
    finally:
        for d in mounts:
            subprocess.run(["umount", "-l", str(d)], check=False)
    row.notes.append(f"{no_space} of {row.runs} big puts ended with exit 9, {stored_big} stored")
    return row


def many_clients(work: Path, runs: int, *, clients: int = 32, files: int = 100) -> Row:
    """``clients`` CLI processes at once, each putting a directory of ``files`` small files."""
    row = Row(f"{clients} clients x {files} files at once")
    with cluster(work, "clients") as c:
        for run in range(runs):
            row.runs += 1
            base = work / f"clients-src-{run}"
            shas: dict[str, tuple[str, int]] = {}
            for k in range(clients):
                for j in range(files):
                    p = random_file(base / f"r{run}c{k}" / f"f{j}", random.randint(1, 8192))
                    shas[f"r{run}c{k}/f{j}"] = (sha256_file(p), p.stat().st_size)
            procs = [
                subprocess.Popen([*COFRE, "put", "--per-file", f"r{run}c{k}"], env=c.env, cwd=base,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for k in range(clients)
            ]  # fmt: skip
            codes = [p.wait(timeout=1800) for p in procs]
            ok = [
                row.op(code, expected=set(), what=f"put r{run}c{k}") for k, code in enumerate(codes)
            ]
            out = work / f"clients-out-{run}"
            for k in range(clients):
                got = c.cli("get", "--prefix", f"r{run}c{k}/", "-o", str(out))
                if got.code != 0:
                    row.unexpected_failures.append(f"get --prefix r{run}c{k}/: exit {got.code}")
            for rel, (sha, size) in shas.items():
                k = int(rel.split("c", 1)[1].split("/")[0])
                restored = out / rel
                row.versions_checked += 1
                if not restored.exists():
                    if ok[k]:
                        row.bytes_lost += size
                elif sha256_file(restored) != sha:
                    row.corrupt_restores += 1
            shutil.rmtree(base)
            shutil.rmtree(out, ignore_errors=True)
        fsck = c.cli("fsck", "--json")
        if fsck.code not in (0, 1):
            row.unexpected_failures.append(f"fsck: exit {fsck.code}")
        else:
            for f in fsck.json()["files"]:
                if any(ch["status"] == "missing" for ch in f["chunks"]):
                    row.missing_chunk_versions += 1
    return row


def put_rm_gc(work: Path, runs: int) -> Row:
    """Puts racing `rm` and `gc --grace 0` on the same few names."""
    row = Row("puts racing rm and gc on the same names")
    puts: list[Put] = []
    last_rm_end: dict[str, float] = {}
    names = [f"race/{i}" for i in range(4)]
    with cluster(work, "race") as c:
        for _ in range(runs):
            row.runs += 1
            ops: list[tuple[str, Any, subprocess.Popen[bytes], float]] = []
            for k in range(3):
                name = random.choice(names)
                src = random_file(work / f"src-race-{k}", random.randint(1, 6 << 20))
                p = Put(name, sha256_file(src), src.stat().st_size, False, started=time.time())
                ops.append(("put", p, c.put_bg(src, name), p.started))
            target = random.choice(names)
            rm = subprocess.Popen([*COFRE, "rm", target], env=c.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)  # fmt: skip
            ops.append(("rm", target, rm, time.time()))
            gc = subprocess.Popen([*COFRE, "gc", "--grace", "0"], env=c.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            ops.append(("gc", None, gc, time.time()))
            for kind, what, proc, _ in ops:
                out, err = proc.communicate(timeout=600)
                if kind == "put":
                    what.ok = row.op(
                        proc.returncode, expected=set(), what=f"put {what.name}", err=err.decode()
                    )
                    what.version = put_version(out.decode() if out else "")
                    puts.append(what)
                elif kind == "rm":
                    # Not found is what rm says when a racing put has not committed yet.
                    row.op(proc.returncode, expected={4}, what=f"rm {what}", err=err.decode())
                    last_rm_end[what] = time.time()
                else:
                    row.op(proc.returncode, expected=set(), what="gc", err=err.decode())
        # A put that started after the last rm of its name ended must still be there.
        verify(c, row, puts, work,
               must_list=lambda p: p.started > last_rm_end.get(p.name, 0.0))  # fmt: skip
    return row


SCENARIOS: dict[str, tuple[Callable[[Path, int], Row], int]] = {
    "node-kill": (node_kill, 100),
    "manager-kill": (manager_kill, 20),
    "bit-flip": (bit_flip, 20),
    "store-wipe": (store_wipe, 3),
    "disk-full": (disk_full, 5),
    "clients": (many_clients, 1),
    "race": (put_rm_gc, 50),
}


def run_scenarios(work: Path, counts: dict[str, int], **kw: Any) -> list[Row]:
    rows = []
    for key, runs in counts.items():
        fn, _ = SCENARIOS[key]
        started = time.monotonic()
        row = fn(work, runs, **kw.get(key, {}))
        row.notes.append(f"{time.monotonic() - started:.0f} s")
        print(f"faults: {key}: {row}", file=sys.stderr)
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | runs | operations | failed as expected | failed unexpectedly "
        "| versions verified | bytes lost | corrupt restores | versions missing a chunk "
        "| time to full copies | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.runs} | {r.ops} | {r.expected_failures} "
            f"| {len(r.unexpected_failures)} | {r.versions_checked} | {r.bytes_lost} "
            f"| {r.corrupt_restores} | {r.missing_chunk_versions} | {r.full_copies} "
            f"| {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs-scale",
        type=float,
        default=1.0,
        help="multiply every scenario's run count (at least 1 run each)",
    )
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="these scenarios")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: every cluster is stopped and every tmpfs unmounted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = {
        key: max(1, round(full * args.runs_scale))
        for key, (_, full) in SCENARIOS.items()
        if not args.only or key in args.only
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cofre-faults-") as tmp:
        rows = run_scenarios(Path(tmp), counts)
    full = {key: n for key, (_, n) in SCENARIOS.items()}
    ran = ", ".join(f"{k} {n} (full {full[k]})" for k, n in counts.items())
    if args.runs_scale != 1.0:
        ran = (
            f"**reduced counts**: {args.runs_scale} of the full ones (`make faults` runs them "
            f"all): {ran}"
        )
    unexpected = [f"- {r.scenario}: {u}" for r in rows for u in r.unexpected_failures]
    report = f"""# Reliability: faults measured

Produced by `make faults` (`python bench/faults.py --runs-scale {args.runs_scale}`) on
{time.strftime("%Y-%m-%d")}: {platform.node()}, {os.cpu_count()} cores, Python
{platform.python_version()}, commit {commit}. Runs per scenario: {ran}.

Every scenario runs real `cofre local up` clusters (4 storage nodes, replication factor 2,
unless the scenario says otherwise) in temporary dirs and the real CLI. After its faults, every
committed version is restored with `cofre get --version N` and its sha256 compared with what was
put. **Bytes lost**: bytes of versions whose put succeeded and which are gone or unreadable.
**Corrupt restores**: restores whose bytes differ from what was put. **Versions missing a
chunk**: committed versions for which `cofre fsck` finds a chunk with no copy. A failure is
expected when it is the one the fault should cause (a killed peer: exit 3, 5 or 10; a full
disk: exit 9; `rm` of a name a racing put has not committed yet: exit 4).

- SIGKILL a storage node: `os.kill` on a random node's pid from the state file at a random
  moment of a 4-24 MiB put; `local up` restarts it; the next run waits until every node is
  ready.
- SIGKILL the manager: `os.kill` on the manager's pid from the state file at a random moment
  of a 1-16 MiB put's transfer (once its first chunk is on a node, within about the time the
  rest of a put that size takes); the notes count the puts the kill cut mid-transfer and those
  that had ended before it. A put that rides over the restart counts as a success and is
  verified like any other; `fsck` must be clean after the last kill.
- Byte flipped: one byte of one stored chunk (in its pack or its file) on a random node of 3,
  nodes scrubbing every 4 s (`--node-scrub-cycle-s 4`): the node's background scrub must find
  it (its finding count on `cofre status` goes up) and the manager's repair must put a good
  copy back unasked (`fsck` all ok), then `fsck --verify` must be clean (time column: from the
  flip to repaired).
- Store wiped: `rm -rf` of a node's chunk store (its `chunks` and `packs` dirs), by turns
  while it runs and while it is down (`cofre local kill NODE --down-for 5`, so it comes back
  well inside the 300 s grace period); nobody asks for a repair: the manager must notice the
  emptied node at its next probe and refill it. `fsck` is repeated until no chunk is
  under-replicated; seconds per GiB the node held, for each way.
- Disk full: 3 nodes, each data dir on its own 160 MiB tmpfs; a 1 MiB put must succeed; a
  64 MiB put is started and, once its first chunk is on a node, every tmpfs is filled by
  another writer: the put must fail with exit 9 (or succeed if all its chunks were written by
  then; the notes say how many got 9); nothing committed before is lost; `gc --grace 0`
  then collects what the failed put left, so the next run finds room.
- Clients: that many `cofre put DIR` at once, each DIR of small files (1 B-8 KiB); every file
  restored with `get --prefix`.
- Race: per run, three puts of up to 6 MiB to 4 shared names, one `rm` and one `gc --grace 0`
  at once. A put whose name was not removed after it started must still be listed; every listed
  version must restore to exactly what its put sent.

{table(rows)}

Goal in every row: 0 bytes lost, 0 corrupt restores, 0 versions missing a chunk.
{"Unexpected failures:" if unexpected else "No unexpected failures."}
{chr(10).join(unexpected)}
"""
    args.report.write_text(report)
    print(report)
    if not all(r.zero_goals for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
