"""Real processes on loopback: `cofre local up` started as a user starts it, the CLI as a user
runs it. Nothing here imports the services; they are reached only through the command (the
chunk store's read-only look at a data dir aside, to see what a node holds on disk)."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cofre.models import ChunkHash
from cofre.storage_node.store import stored_chunks

from ..helpers import eventually_sync

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 300.0


def cofre_argv() -> list[str]:
    """The installed `cofre` script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "cofre"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cofre.cli"]


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
    """``size`` random bytes, written in pieces so that big files need little memory."""
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


def chunk_hashes(path: Path, chunk_size: int) -> list[str]:
    out = []
    with path.open("rb") as f:
        while block := f.read(chunk_size):
            out.append(hashlib.sha256(block).hexdigest())
    return out


def process_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited; only its parent's wait is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def base_env() -> dict[str, str]:
    """The test's environment without any cofre settings leaking in from outside."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COFRE_")}


@dataclass
class Result:
    code: int
    out: str
    err: str
    out_bytes: bytes = b""
    maxrss: int = 0  # bytes, peak resident memory of the CLI process

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cluster:
    data_dir: Path
    proc: subprocess.Popen[bytes]
    url: str = ""
    token: str = ""
    ca: str = ""  # the CA file `local up` printed (COFRE_CA=); empty with --insecure
    log_path: Path = field(default_factory=Path)

    @property
    def env(self) -> dict[str, str]:
        env = base_env()
        env["COFRE_MANAGER"] = self.url
        env["COFRE_TOKEN"] = self.token
        if self.ca:
            env["COFRE_CA"] = self.ca
        else:
            env["COFRE_INSECURE"] = "1"
        return env

    def ssl_context(self) -> ssl.SSLContext | None:
        """For a test's own requests to the manager or a node (urllib's ``context=``)."""
        return ssl.create_default_context(cafile=self.ca) if self.ca else None

    @property
    def local_env(self) -> dict[str, str]:
        """For the `cofre local ...` commands: they find this cluster by its data dir."""
        return dict(base_env(), COFRE_DATA_DIR=str(self.data_dir))

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "state.json").read_text())
        return data

    def node_of_netloc(self, netloc: str) -> str:
        for node in self.state()["nodes"]:
            if urlsplit(node["url"]).netloc == netloc:
                return str(node["node_id"])
        raise AssertionError(f"no node listens at {netloc}")

    def chunk_files(self) -> dict[str, set[str]]:
        """node id -> hashes of the chunks its store holds on disk (packed or a file)."""
        return {
            node: set(stored_chunks(self.data_dir / "nodes" / node)) for node in self.node_dirs()
        }

    def node_dirs(self) -> list[str]:
        return sorted(p.name for p in (self.data_dir / "nodes").iterdir())

    def stored_bytes(self, node_id: str) -> int:
        """Bytes of the chunks a node holds on disk."""
        return sum(w.length for w in stored_chunks(self.data_dir / "nodes" / node_id).values())

    def flip_byte(self, node_id: str, chunk_hash: str, at: int = 100) -> None:
        """Rot: one byte of one stored copy flipped in place, wherever it lives."""
        where = stored_chunks(self.data_dir / "nodes" / node_id)[ChunkHash(chunk_hash)]
        with open(where.path, "r+b") as fh:
            fh.seek(where.offset + at)
            byte = fh.read(1)
            fh.seek(where.offset + at)
            fh.write(bytes([byte[0] ^ 0xFF]))

    def lose_copy(self, node_id: str, chunk_hash: str) -> None:
        """One copy gone from a node, as the node itself removes it (its delete endpoint)."""
        [url] = [n["url"] for n in self.state()["nodes"] if n["node_id"] == node_id]
        request = urllib.request.Request(
            f"{url.rstrip('/')}/v1/chunks/delete",
            data=json.dumps({"hashes": [chunk_hash]}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30, context=self.ssl_context()) as resp:
            assert json.loads(resp.read())["deleted"] == 1

    def holders(self, chunk_hash: str) -> set[str]:
        return {node for node, files in self.chunk_files().items() if chunk_hash in files}

    def cli(
        self,
        *args: str,
        stdin: bytes | str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = CLI_TIMEOUT_S,
    ) -> Result:
        return run_cli(args, stdin=stdin, cwd=cwd, env=self.env if env is None else env,
                       timeout=timeout)  # fmt: skip

    def stop(self) -> int:
        """SIGTERM `local up` and wait for it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("cofre local up did not stop within its deadline") from None

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _peak_rss(pid: int) -> int:
    """Bytes of the process's peak resident memory so far (VmHWM), 0 once it has exited.

    Not wait4's ru_maxrss: that keeps, across exec, the peak of the test process the child was
    (v)forked from, so any earlier test that grew this process would count as the CLI's memory.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes | str | None = None,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> Result:
    """Run the CLI to completion; output via temp files (no pipe limits), peak RSS polled."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*cofre_argv(), *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            cwd=cwd,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode() if isinstance(stdin, str) else stdin)
            proc.stdin.close()
        peak = 0

        def reap() -> tuple[int, int, object]:
            nonlocal peak
            peak = max(peak, _peak_rss(proc.pid))
            return os.wait4(proc.pid, os.WNOHANG)

        try:
            _, status, _usage = eventually_sync(
                reap,
                until=lambda waited: waited[0],
                what=f"cofre {' '.join(args)} to finish",
                timeout_s=timeout,
            )
        except AssertionError:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        raw = out.read()
        return Result(
            code=proc.returncode,
            out=raw.decode(errors="replace"),
            err=err.read().decode(errors="replace"),
            out_bytes=raw,
            maxrss=peak,
        )


def start_cluster(
    data_dir: Path,
    *,
    nodes: int = 4,
    replication_factor: int = 2,
    primary_keeps_copy: bool = False,
    port: int | None = None,
    extra_args: Sequence[str] = (),
) -> Cluster:
    """`cofre local up` in the background; returns once it printed the manager and token."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        *cofre_argv(), "local", "up",
        "--nodes", str(nodes),
        "--data-dir", str(data_dir),
        "--port", str(port or free_port()),
        "--replication-factor", str(replication_factor),
    ]  # fmt: skip
    if primary_keeps_copy:
        argv.append("--primary-keeps-copy")
    argv.extend(extra_args)
    log_path = data_dir.parent / f"{data_dir.name}-local-up.err"
    with log_path.open("ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=base_env())
    cluster = Cluster(data_dir=data_dir, proc=proc, log_path=log_path)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (cluster.url and cluster.token):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise AssertionError(f"cofre local up did not start:\n{cluster.stderr_text()}")
        key, _, value = line.strip().partition("=")
        if key == "COFRE_MANAGER":
            cluster.url = value
        elif key == "COFRE_TOKEN":
            cluster.token = value
        elif key == "COFRE_CA":
            cluster.ca = value
    return cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The shared cluster: 4 nodes, replication factor 2 (the seed's topology)."""
    c = start_cluster(tmp_path_factory.mktemp("cofre") / "local")
    try:
        yield c
    finally:
        code = c.stop()
    assert code == 0, c.stderr_text()
    assert not (c.data_dir / "state.json").exists()


def request_hosts(stderr: str) -> set[str]:
    """host:port of every request the CLI logged (COFRE_LOG_LEVEL=DEBUG)."""
    hosts = set()
    for line in stderr.splitlines():
        if " request method=" in line and " url=" in line:
            hosts.add(urlsplit(line.split(" url=", 1)[1].strip()).netloc)
    return hosts


def one_error_line(result: Result) -> str:
    """The single `cofre: error:` line a failed command must print, and nothing else."""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("cofre: error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


@pytest.fixture
def start_local(tmp_path: Path) -> Iterator[Any]:
    """Start extra `cofre local up` clusters in this test; all are stopped at its end."""
    started: list[Cluster] = []

    def start(data_dir: Path | None = None, **kwargs: Any) -> Cluster:
        c = start_cluster(data_dir or tmp_path / f"local-{len(started)}", **kwargs)
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.stop()


@pytest.fixture(scope="session")
def it() -> Any:
    """The helpers above, for test modules (conftest is not importable in importlib mode)."""
    import types

    return types.SimpleNamespace(
        base_env=base_env,
        chunk_hashes=chunk_hashes,
        cofre_argv=cofre_argv,
        free_port=free_port,
        one_error_line=one_error_line,
        process_running=process_running,
        random_file=random_file,
        request_hosts=request_hosts,
        run_cli=run_cli,
        sha256_file=sha256_file,
        start_cluster=start_cluster,
    )
