"""A dev cluster component whose pid file is gone is still found, by its command line, and only
components of that cluster are (real processes, no cluster)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devcluster import procs


def _start_as(argv0: str) -> subprocess.Popen[bytes]:
    """A sleeping process whose command line starts with ``argv0``, as a component's does."""
    return subprocess.Popen(["bash", "-c", f'exec -a "{argv0}" sleep 60'])


def test_components_of_a_state_dir_are_found_without_pid_files(tmp_path: Path) -> None:
    ours = tmp_path / "ours" / ".devcluster"
    theirs = tmp_path / "theirs" / ".devcluster"
    etcd = _start_as(f"{ours}/bin/etcd")
    other = _start_as(f"{theirs}/bin/etcd")
    not_a_component = _start_as(f"{ours}/bin/tail")
    try:
        found = procs.leftover_components(ours)
        assert etcd.pid in found
        assert other.pid not in found and not_a_component.pid not in found
        for pid in found:
            procs.kill_pid(pid, grace=2)
        assert etcd.wait(timeout=10) is not None
        assert other.poll() is None and not_a_component.poll() is None
    finally:
        for proc in (etcd, other, not_a_component):
            proc.kill()
            proc.wait()
