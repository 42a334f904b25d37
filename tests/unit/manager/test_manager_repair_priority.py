"""Repair's order, its per-node cap, the wiped-node rule and the exposure window (pure logic)."""

from __future__ import annotations

import asyncio

import pytest

from cofre.manager.catalog import LiveChunk
from cofre.manager.drain import repair_order
from cofre.manager.exposure import Exposure
from cofre.manager.registry import NodeState
from cofre.manager.repair import short_chunks, wiped
from cofre.models import ChunkHash, NodeId
from cofre.pacing import Slots
from cofre.protocol.node_api import NodeStats, ScrubFinding, ScrubProgress

A, B, C, D = (NodeId(n) for n in "abcd")
X, Y, Z, W = (ChunkHash(c * 64) for c in "1234")


def _chunk(h: ChunkHash, *holders: NodeId) -> LiveChunk:
    return LiveChunk(h, 10, frozenset(holders))


def test_the_chunks_with_the_fewest_good_copies_go_first() -> None:
    todo = [_chunk(X, A, B), _chunk(Y, A), _chunk(Z, A, B, C), _chunk(W, C)]
    # F = 4: Y and W are down to one copy, X to two, Z to three.
    assert [c.hash for c in repair_order(todo, excluded=set())] == [Y, W, X, Z]
    # A copy on a draining (excluded) node does not count as one left.
    assert [c.hash for c in repair_order(todo, excluded={A})][:3] == [Y, X, W]


def test_a_node_takes_at_most_its_cap_and_a_release_wakes_the_waiters() -> None:
    async def run() -> None:
        slots = Slots(2)
        slots.take(A, B)
        slots.take(A, A)  # one copy from and to the same node holds one slot
        assert (slots.busy(A), slots.free(A), slots.free(B)) == (2, False, True)
        released = slots.released
        waiter = asyncio.ensure_future(released.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        slots.give(A, B)
        await asyncio.wait_for(waiter, 1.0)
        assert slots.free(A) and slots.busy(B) == 0
        assert slots.released is not released  # a fresh event for the next wait

    asyncio.run(run())
    with pytest.raises(ValueError, match="at least 1"):
        Slots(0)


def test_a_node_is_wiped_when_it_reports_far_below_what_the_catalog_records() -> None:
    assert wiped(0, 10) and wiped(4, 10)
    assert not wiped(5, 10) and not wiped(12, 10) and not wiped(0, 0)


def test_short_chunks_count_copies_on_ready_nodes_only() -> None:
    chunks = [_chunk(X, A, B), _chunk(Y, A, C), _chunk(Z, C, D)]
    assert [c.hash for c in short_chunks(chunks, ready={A, B}, factor=2)] == [Y, Z]


def test_the_window_runs_from_the_first_cause_to_the_look_that_finds_none_short() -> None:
    e = Exposure()
    e.observe(0, now=10.0)
    assert e.episodes == 0 and e.report(10.0).longest_s == 0
    e.observe(3, now=100.0, since=95.0)  # a node went unready at 95, seen at 100
    e.observe(2, now=130.0, since=90.0)  # an earlier cause learned later backdates it
    report = e.report(140.0)
    assert (report.open_since, report.open_s, report.longest_s) == (90.0, 50.0, 50.0)
    e.observe(0, now=160.0)
    e.observe(1, now=200.0)
    e.observe(0, now=210.0)
    report = e.report(300.0)
    assert report.open_since is None and report.episodes == 2
    assert (report.last_began, report.last_ended, report.last_s) == (200.0, 210.0, 10.0)
    assert report.longest_s == 70.0


def _stats(count: int, *, started: float = 1.0, seqs: tuple[int, ...] = ()) -> NodeStats:
    findings = [ScrubFinding(seq=s, hash=ChunkHash(f"{s:064x}"), at=50.0 + s) for s in seqs]
    return NodeStats(
        node_id=A,
        stored_bytes=0,
        free_bytes=0,
        chunk_count=count,
        scrub=ScrubProgress(
            enabled=True,
            started_at=started,
            cycle_s=1.0,
            bytes_per_s=1,
            findings_total=max(seqs, default=0),
            findings=findings,
        ),
    )


def test_a_probe_takes_up_each_scrub_finding_once_and_flags_an_emptied_node() -> None:
    state = NodeState(A, "http://a", discovered_ready=True)
    assert state.take_stats(_stats(100), was_ready=False) and state.refill_check
    state.refill_check = False
    assert not state.take_stats(_stats(100), was_ready=True)
    assert state.take_stats(_stats(99, seqs=(1, 2)), was_ready=True)
    assert set(state.scrub_findings) == {ChunkHash(f"{s:064x}") for s in (1, 2)}
    state.scrub_findings.clear()
    assert not state.take_stats(_stats(99, seqs=(1, 2)), was_ready=True)  # seen already
    # The count halved: the refill pass compares it with the catalog.
    assert state.take_stats(_stats(10, seqs=(1, 2)), was_ready=True) and state.refill_check
    state.refill_check = False
    # Findings the node no longer lists were missed: all its chunks get checked.
    assert state.take_stats(_stats(10, seqs=(7, 8)), was_ready=True) and state.refill_all
    # A restarted node numbers its findings from 1 again.
    state.refill_all, state.refill_check = False, False
    state.scrub_findings.clear()
    assert state.take_stats(_stats(10, started=2.0, seqs=(1,)), was_ready=True)
    assert list(state.scrub_findings) == [ChunkHash(f"{1:064x}")]
