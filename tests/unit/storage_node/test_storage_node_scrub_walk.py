"""The scrub's walk and schedule, without a node."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cofre.storage_node.scrub import due_bytes, next_chunks


def _put(root: Path, data: bytes) -> str:
    h = hashlib.sha256(data).hexdigest()
    leaf = root / h[:2] / h[2:4]
    leaf.mkdir(parents=True, exist_ok=True)
    (leaf / h).write_bytes(data)
    return h


def test_the_walk_goes_in_hash_order_from_the_cursor_in_slices(tmp_path: Path) -> None:
    hashes = sorted(_put(tmp_path, str(i).encode() * (i + 1)) for i in range(40))
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / "not-a-dir-level").mkdir()
    (tmp_path / "zz").mkdir()
    seen: list[str] = []
    cursor = ""
    while batch := next_chunks(tmp_path, after=cursor, limit=7):
        assert len(batch) <= 7
        seen.extend(h for h, _ in batch)
        cursor = batch[-1][0]
    assert seen == hashes
    sizes = dict(next_chunks(tmp_path, after="", limit=100))
    assert all(sizes[h] == (tmp_path / h[:2] / h[2:4] / h).stat().st_size for h in hashes)
    assert next_chunks(tmp_path / "absent", after="", limit=5) == []


def test_what_is_due_grows_with_the_cycle_and_stops_at_the_whole_store() -> None:
    week = 7 * 86400.0
    assert due_bytes(1000, elapsed_s=0, cycle_s=week) == 0
    assert due_bytes(1000, elapsed_s=week / 4, cycle_s=week) == pytest.approx(250)
    assert due_bytes(1000, elapsed_s=2 * week, cycle_s=week) == 1000
