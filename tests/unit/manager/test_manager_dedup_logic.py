"""Which copies count for dedup across placement (pure logic)."""

from __future__ import annotations

from cofre.manager.dedup import enough_copies
from cofre.models import ChunkHash, NodeId

A, B, C, D = (NodeId(n) for n in ("a", "b", "c", "d"))
X, Y, Z = (ChunkHash(c * 64) for c in "123")


def test_a_chunk_counts_once_confirmed_on_factor_usable_nodes() -> None:
    good = {X: {A, B}, Y: {A, D}, Z: set()}
    # D is not usable (unready or draining): Y has one usable copy, X two.
    assert enough_copies(good, usable={A, B, C}, factor=2) == {X: frozenset({A, B})}
    assert enough_copies(good, usable={A, B, C, D}, factor=2) == {
        X: frozenset({A, B}),
        Y: frozenset({A, D}),
    }
    assert enough_copies(good, usable={A, B, C, D}, factor=3) == {}
    assert enough_copies({}, usable={A}, factor=1) == {}
