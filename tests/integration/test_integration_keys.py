"""Keys with roles through the real CLI against `cofre local up`: a backup key backs up and
restores through the nodes (which never see a token), and its deletes are refused with one
line and their own exit code; a read key restores and cannot back up; a revoked key is done."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path
from typing import Any

from cofre.cli.exitcodes import ExitCode

from ..metrics_text import Scraped


def _as(cluster: Any, key: str) -> dict[str, str]:
    """The CLI's environment with the key and no token (nor the local state file's)."""
    env = dict(cluster.env, COFRE_KEY=key)
    del env["COFRE_TOKEN"]
    return env


def _refused(result: Any, it: Any, *, role: str, needs: str) -> None:
    assert result.code == ExitCode.REFUSED, (result.code, result.err)
    line = it.one_error_line(result)
    assert f"has role {role};" in line and f"needs role {needs}" in line, line


def _refusals(cluster: Any) -> dict[tuple[tuple[str, str], ...], float]:
    request = urllib.request.Request(
        cluster.url + "/metrics", headers={"Authorization": f"Bearer {cluster.token}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=cluster.ssl_context()) as resp:
        return Scraped(resp.read().decode()).series("cofre_manager_auth_refused_total")


def test_backup_and_read_keys_do_what_their_role_allows_and_nothing_more(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    added = cluster.cli("keys", "add", f"laptop-{run}", "--role", "backup")
    assert added.code == 0, added.err
    backup = added.out.strip()
    assert backup.startswith("cofre_") and "shown only now" in added.err
    reader = cluster.cli("keys", "add", f"auditor-{run}", "--role", "read", "--json").json()
    assert reader["role"] == "read"
    listed = {k["name"]: k for k in cluster.cli("keys", "ls", "--json").json()}
    assert listed[f"laptop-{run}"]["role"] == "backup" and "key" not in listed[f"laptop-{run}"]
    before = _refusals(cluster)

    # The backup key: a big file (chunk by chunk) and a directory of small ones (batches).
    big = it.random_file(tmp_path / "big.bin", 9 * 1024 * 1024)
    top = f"small-{run}"
    small = tmp_path / top
    small.mkdir()
    for i in range(5):
        (small / f"s{i}.txt").write_text(f"small {i} {run}\n")
    name = f"keys-{run}/big.bin"
    put = cluster.cli("put", str(big), "--name", name, env=_as(cluster, backup))
    assert put.code == 0, put.err
    put_dir = cluster.cli("put", "--per-file", top, cwd=tmp_path, env=_as(cluster, backup))
    assert put_dir.code == 0, put_dir.err
    snap = cluster.cli("put", top, "--json", cwd=tmp_path, env=_as(cluster, backup))
    assert snap.code == 0, snap.err
    ls = cluster.cli("ls", "--json", env=_as(cluster, backup)).json()
    assert name in {f["name"] for f in ls}
    got = cluster.cli("get", name, "-o", str(tmp_path / "big.out"), env=_as(cluster, backup))
    assert got.code == 0, got.err
    assert it.sha256_file(tmp_path / "big.out") == it.sha256_file(big)

    # It can neither delete nor collect nor manage keys: one line each, exit code 11.
    _refused(cluster.cli("rm", name, env=_as(cluster, backup)), it, role="backup", needs="admin")
    gc = cluster.cli("gc", "--grace", "0", env=_as(cluster, backup))
    _refused(gc, it, role="backup", needs="admin")
    keys = cluster.cli("keys", "ls", env=_as(cluster, backup))
    _refused(keys, it, role="backup", needs="admin")
    assert name in {f["name"] for f in cluster.cli("ls", "--json").json()}

    # The read key restores (one by one and in batches) and cannot back up.
    restore = tmp_path / "restore"
    as_reader = _as(cluster, reader["key"])
    prefix = cluster.cli("get", "--prefix", f"{top}/", "-o", str(restore), env=as_reader)
    assert prefix.code == 0, prefix.err
    restored = sorted(p.read_text() for p in restore.rglob("*.txt"))
    assert restored == sorted(f"small {i} {run}\n" for i in range(5))
    # ... and a snapshot: its chunks are read from the nodes under the located read ticket.
    tree = tmp_path / "tree"
    snapshot_id = snap.json()["snapshot_id"]
    got_tree = cluster.cli("restore", snapshot_id, "--target", str(tree), env=as_reader)
    assert got_tree.code == 0, got_tree.err
    restored = sorted(p.read_text() for p in tree.rglob("*.txt"))
    assert restored == sorted(f"small {i} {run}\n" for i in range(5))
    read_put = cluster.cli("put", str(big), "--name", f"{name}.2", env=as_reader)
    _refused(read_put, it, role="read", needs="backup")

    # Every refusal was counted by the key's role and the operation.
    after = _refusals(cluster)

    def more(role: str, operation: str) -> float:
        labels = (("operation", operation), ("role", role))
        return after.get(labels, 0.0) - before.get(labels, 0.0)

    assert more("backup", "deleteV1Files") == 1
    assert more("backup", "postV1Gc") == 1
    assert more("backup", "getV1Keys") == 1
    assert more("read", "postV1Uploads") == 1

    # Revoked: the next request is refused as a wrong key.
    assert cluster.cli("keys", "rm", f"laptop-{run}").code == 0
    gone = cluster.cli("ls", env=_as(cluster, backup))
    assert gone.code == ExitCode.UNAUTHORIZED
    assert "wrong cluster token or key" in it.one_error_line(gone)
    assert cluster.cli("keys", "rm", f"auditor-{run}").code == 0
