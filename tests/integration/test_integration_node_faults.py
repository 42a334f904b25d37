"""A full storage node seen from the CLI: one line, the out-of-space exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cofre.cli.exitcodes import ExitCode


def test_put_onto_full_nodes_fails_with_one_line_and_exit_9(
    start_local: Any, it: Any, tmp_path: Path
) -> None:
    # Every node keeps more free space than any disk has: each write is refused as out of space,
    # while placement (which only knows the nodes' free bytes) still picks them.
    c = start_local(nodes=3, replication_factor=2, extra_args=["--node-reserve-bytes", str(2**62)])
    src = it.random_file(tmp_path / "src", 300_000)
    result = c.cli("put", str(src), "--name", "full/one")
    assert result.code == ExitCode.NO_SPACE == 9, (result.code, result.err)
    line = it.one_error_line(result)
    # The primary relays and keeps no copy here: the replicas are full, and stay unnamed.
    assert "a copy node is out of space" in line, line
    nodes = [n["node_id"] for n in c.state()["nodes"]]
    assert nodes and not any(n in line for n in nodes), (nodes, line)
    listed = c.cli("ls", "--json")
    assert listed.code == 0 and listed.json() == []
