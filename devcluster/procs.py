"""Background processes of the dev cluster, tracked by pid files so that they outlive the
command that started them and can be stopped by id later."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devcluster import config

PID_DIR = config.STATE_DIR / "pids"
LOG_DIR = config.STATE_DIR / "logs"


def start(name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Start ARGV detached (own session), output to logs/NAME.log; returns its pid."""
    PID_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    if (pid := running_pid(name)) is not None:
        return pid
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(LOG_DIR / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=full_env,
            close_fds=True,
        )
    (PID_DIR / f"{name}.pid").write_text(f"{proc.pid} {start_time(proc.pid)}\n")
    return proc.pid


def start_time(pid: int) -> str:
    """The kernel's start time of PID: with the pid, it names one process even if pids are
    reused (after a reboot or when the machine's processes were all killed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def read_pid_file(path: Path) -> int | None:
    """The pid recorded in PATH if that very process still runs."""
    try:
        fields = path.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) > 1 and fields[1] != start_time(pid):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A zombie has exited: only its parent's wait is missing.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def running_pid(name: str) -> int | None:
    return read_pid_file(PID_DIR / f"{name}.pid")


def stop(name: str, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process NAME, wait up to GRACE seconds, then SIGKILL it."""
    pid = running_pid(name)
    if pid is not None:
        kill_pid(pid, grace, sig)
    (PID_DIR / f"{name}.pid").unlink(missing_ok=True)


def kill_pid(pid: int, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def names() -> list[str]:
    if not PID_DIR.is_dir():
        return []
    return sorted(p.stem for p in PID_DIR.glob("*.pid"))


def pids_with_arg(fragment: str) -> list[int]:
    """Pids whose command line contains FRAGMENT (e.g. one of our socket paths)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def log_tail(name: str, lines: int = 30) -> str:
    try:
        return "\n".join(
            (LOG_DIR / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
        )
    except OSError:
        return "(no log)"


# The programs a dev cluster runs (their executables' names).
COMPONENTS = frozenset(
    {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "kubelet",
        "containerd",
        "coredns",
    }
)


def leftover_components(state_dir: Path) -> list[int]:
    """Pids of cluster components that belong to STATE_DIR but have no pid file any more: a
    start interrupted between spawning one and recording it, or pid files removed while it
    ran. Found by their command line, which names the state dir (configs, data, certificates)
    and starts with one of the component programs."""
    fragment = f"{state_dir}/"
    found = []
    for pid in pids_with_arg(fragment):
        try:
            argv0 = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if Path(argv0.decode(errors="replace")).name in COMPONENTS:
            found.append(pid)
    return found
