"""Uploads that fail part way, through the real CLI: a put killed after its manifest reached
the nodes, a replica killed mid-put, a commit whose answer is lost."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.cli.exitcodes import ExitCode

from ..helpers import eventually_sync
from .faultproxy import FaultProxy

MiB = 1024 * 1024
TTL_S = 3


def _manifest_hash(doc: dict[str, Any]) -> str:
    """The hash of the manifest a commit carried (its canonical encoding, models.Manifest)."""
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _open_uploads(c: Any) -> float:
    """The manager's open uploads, from its /metrics."""
    request = urllib.request.Request(
        f"{c.url}/metrics", headers={"Authorization": f"Bearer {c.token}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=c.ssl_context()) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("cofre_manager_open_uploads "):
            return float(line.split()[1])
    raise AssertionError("the manager reports no cofre_manager_open_uploads")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["aborted", "expired"])
def test_a_put_killed_after_its_manifest_was_sent_blocks_nothing(
    start_local: Any, it: Any, tmp_path: Path, how: signal.Signals
) -> None:
    c = start_local(
        nodes=3, replication_factor=2, extra_args=["--upload-session-ttl-s", str(TTL_S)]
    )
    src = it.random_file(tmp_path / "src", DEFAULT_CHUNK_SIZE + 77)
    with FaultProxy(c.url, mode="hold", tls_dir=c.data_dir / "tls") as proxy:
        put = subprocess.Popen(
            [*it.cofre_argv(), "put", str(src), "--name", "first"],
            env=dict(c.env, COFRE_MANAGER=proxy.url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        commits = eventually_sync(
            lambda: list(proxy.commits), what="the put to send its commit", timeout_s=60
        )
        put.send_signal(how)
        put.wait(timeout=60)
        manifest = _manifest_hash(commits[0]["manifest"])
        assert c.holders(manifest), "the manifest reached no node"
        if how == signal.SIGINT:  # the CLI aborts its upload on the way out
            assert "DELETE" in " ".join(proxy.seen)
    if how == signal.SIGKILL:  # nothing aborts it: the manager lets the session expire
        eventually_sync(
            lambda: _open_uploads(c), until=lambda n: n == 0, what="the upload to expire"
        )

    nxt = it.random_file(tmp_path / "next", 5000)
    done = c.cli("put", str(nxt), "--name", "next")

    assert done.code == 0, done.err
    assert [f["name"] for f in c.cli("ls", "--versions", "--json").json()] == ["next"]
    fsck = c.cli("fsck")
    assert fsck.code == 0 and "HEALTHY" in fsck.out, fsck.out
    assert c.cli("gc", "--grace", "0").code == 0
    assert not c.holders(manifest), "GC left the cancelled upload's manifest"
    assert [f["name"] for f in c.cli("ls", "--versions", "--json").json()] == ["next"]


def test_a_replica_killed_mid_put_is_one_line_and_its_exit_code(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    c = start_local(nodes=3, replication_factor=2)
    src = it.random_file(tmp_path / "src", 3 * MiB)
    killed: list[str] = []

    def kill_a_replica(created: dict[str, Any]) -> None:
        """Once the upload is placed and before any chunk moves: SIGKILL a node that is not
        the primary (with 3 nodes and factor 2, both others hold its copies)."""
        primary = c.node_of_netloc(urlsplit(created["primary_url"]).netloc)
        pids = c.state()["pids"]
        victim = next(n for n in sorted(pids) if n not in {primary, "manager"})
        os.kill(pids[victim], signal.SIGKILL)
        killed.append(victim)

    with FaultProxy(
        c.url, mode="pass", on_create=kill_a_replica, tls_dir=c.data_dir / "tls"
    ) as proxy:
        result = c.cli("put", str(src), "--name", "big", env=dict(c.env, COFRE_MANAGER=proxy.url))

    assert killed
    line = it.one_error_line(result)
    assert "TaskGroup" not in line and "could not be" in line, line
    assert result.code == ExitCode.UNAVAILABLE, result.err
    assert c.cli("ls", "--json").json() == []


def test_a_commit_whose_answer_is_lost_says_the_outcome_is_unknown(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    src = it.random_file(tmp_path / "src", 4000)
    name = f"lost-answer/{os.getpid()}"
    with FaultProxy(cluster.url, mode="drop", tls_dir=cluster.data_dir / "tls") as proxy:
        result = cluster.cli(
            "put", str(src), "--name", name, env=dict(cluster.env, COFRE_MANAGER=proxy.url)
        )
        assert len(proxy.answered) == 1 and proxy.answered[0] < 300, proxy.answered

    line = it.one_error_line(result)
    assert "no answer came back" in line and "check with `cofre ls`" in line, line
    assert result.code == ExitCode.OUTCOME_UNKNOWN, result.err
    # Here the manager did commit it: `ls` is where the user finds out.
    assert name in {f["name"] for f in cluster.cli("ls", "--json").json()}
