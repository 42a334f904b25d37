"""What a repair pass copies and forgets (pure logic)."""

from __future__ import annotations

from cofre.manager.catalog import LiveChunk
from cofre.manager.repair import plan_repair
from cofre.models import ChunkHash, NodeId

A, B, C, D = (NodeId(n) for n in "abcd")
X, Y, Z, W = (ChunkHash(c * 64) for c in "1234")


def _chunk(h: ChunkHash, *holders: NodeId) -> LiveChunk:
    return LiveChunk(h, 10, frozenset(holders))


def test_lost_copies_are_forgotten_and_short_chunks_copied_from_good_ones() -> None:
    chunks = [_chunk(X, A, B), _chunk(Y, A, B), _chunk(Z, A, B), _chunk(W, A, D)]
    good = {X: {A, B}, Y: {A}, Z: set(), W: {A}}
    todo, lost, unrecoverable = plan_repair(
        chunks, good, answered={A, B, C}, draining=set(), factor=2
    )
    # Y lost its copy on B; Z lost both; W's copy on D is unknown (D did not answer): kept.
    assert lost == {B: [Y, Z], A: [Z]}
    assert [(c.hash, c.holders) for c in todo] == [(Y, {A}), (W, {A})]
    assert unrecoverable == 1


def test_good_copies_on_draining_nodes_do_not_count_toward_the_factor() -> None:
    todo, lost, unrecoverable = plan_repair(
        [_chunk(X, A, B)], {X: {A, B}}, answered={A, B, C}, draining={B}, factor=2
    )
    assert [(c.hash, c.holders) for c in todo] == [(X, {A, B})]
    assert lost == {} and unrecoverable == 0
