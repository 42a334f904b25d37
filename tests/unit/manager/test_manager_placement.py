"""The seed's score and node choice (pure)."""

from __future__ import annotations

import pytest

from cofre.errors import NotEnoughNodes
from cofre.manager.placement import (
    NodeView,
    Weights,
    candidates,
    choose,
    rank,
    restore_order,
    terms,
)
from cofre.models import NodeId

GIB = 1 << 30


def node(
    name: str,
    *,
    latency: float = 0.01,
    stored: int = 0,
    free: int = 100 * GIB,
    in_flight: int = 0,
    relayed: int = 0,
    landed: int = 0,
    ready: bool = True,
    draining: bool = False,
) -> NodeView:
    return NodeView(
        node_id=NodeId(name),
        url=f"http://{name}",
        ready=ready,
        draining=draining,
        latency_s=latency,
        stored_bytes=stored,
        free_bytes=free,
        in_flight_bytes=in_flight,
        relayed_bytes=relayed,
        landed_bytes=landed,
    )


def scores(nodes: list[NodeView], weights: Weights | None = None) -> dict[str, float]:
    return {n.node_id: s for n, s in rank(nodes, weights or Weights())}


def test_score_matches_hand_computed_values() -> None:
    got = scores(
        [
            node("a", latency=0.010, stored=100),
            node("b", latency=0.020, stored=50),
            node("c", latency=0.040, stored=200),
        ]
    )
    # a: .5*(10/10) + .5*(50/100) = .75; b: .5*(10/20) + .5*1 = .75; c: .5*.25 + .5*.25 = .25
    assert got == pytest.approx({"a": 0.75, "b": 0.75, "c": 0.25})


def test_weights_shift_the_balance() -> None:
    nodes = [node("a", latency=0.010, stored=100), node("b", latency=0.020, stored=50)]
    only_latency = rank(nodes, Weights(latency=1.0, stored_bytes=0.0))
    assert [n.node_id for n, _ in only_latency] == ["a", "b"]
    assert [s for _, s in only_latency] == pytest.approx([1.0, 0.5])
    only_bytes = rank(nodes, Weights(latency=0.0, stored_bytes=1.0))
    assert [n.node_id for n, _ in only_bytes] == ["b", "a"]


def test_zero_values_score_one_on_their_term() -> None:
    got = scores([node("a", latency=0.0, stored=0), node("b", latency=0.02, stored=10)])
    # a: both terms 1. b: min latency 0 / 0.02 = 0, min stored 0 / 10 = 0.
    assert got == pytest.approx({"a": 1.0, "b": 0.0})
    all_zero = scores([node("a", latency=0.0, stored=0), node("b", latency=0.0, stored=0)])
    assert all_zero == pytest.approx({"a": 1.0, "b": 1.0})


def test_ties_break_by_node_id() -> None:
    nodes = [node("c"), node("a"), node("b")]
    assert [n.node_id for n, _ in rank(nodes, Weights())] == ["a", "b", "c"]


def test_in_flight_bytes_count_as_stored() -> None:
    nodes = [node("a", stored=100, in_flight=300), node("b", stored=200)]
    got = scores(nodes, Weights(latency=0.0, stored_bytes=1.0))
    assert got == pytest.approx({"a": 0.5, "b": 1.0})


def test_parallel_uploads_spread_through_reservations() -> None:
    in_flight = {n: 0 for n in "abcd"}
    firsts = []
    for _ in range(4):
        views = [node(n, stored=1000, in_flight=in_flight[n]) for n in "abcd"]
        placed = choose(
            views,
            size=500,
            weights=Weights(),
            factor=1,
            primary_keeps_copy=True,
            min_free_bytes=0,
        )
        firsts.append(placed.primary.node_id)
        for v in placed.nodes:
            in_flight[v.node_id] += 500
    assert sorted(firsts) == ["a", "b", "c", "d"]


def test_not_ready_draining_and_full_nodes_are_left_out() -> None:
    nodes = [
        node("ok"),
        node("down", ready=False),
        node("leaving", draining=True),
        node("full", free=500),
        node("reserved", free=10_000, in_flight=9_700),
    ]
    pool = candidates(nodes, size=400, min_free_bytes=200)
    assert [n.node_id for n in pool] == ["ok"]
    assert [n.node_id for n in candidates(nodes, size=400, min_free_bytes=0)] == ["ok", "full"]


def test_copies_go_to_the_best_and_the_primary_is_another_node() -> None:
    nodes = [node("slow", latency=0.1), node("fast", latency=0.001), node("mid", latency=0.01)]
    placed = choose(
        nodes, size=1, weights=Weights(), factor=2, primary_keeps_copy=False, min_free_bytes=0
    )
    # The seed made the best node the primary; keeping no copy, it stayed the emptiest.
    assert [n.node_id for n in placed.copy_holders] == ["fast", "mid"]
    assert placed.primary.node_id == "slow"

    kept = choose(
        nodes, size=1, weights=Weights(), factor=2, primary_keeps_copy=True, min_free_bytes=0
    )
    assert [n.node_id for n in kept.copy_holders] == ["fast", "mid"]
    assert kept.primary.node_id == "fast"


def test_primary_is_the_candidate_that_relayed_least() -> None:
    nodes = [
        node("a", stored=10),
        node("b", stored=10),
        node("c", stored=50, relayed=900),
        node("d", stored=50, relayed=100),
    ]
    placed = choose(
        nodes, size=1, weights=Weights(), factor=2, primary_keeps_copy=False, min_free_bytes=0
    )
    assert [n.node_id for n in placed.copy_holders] == ["a", "b"]
    assert placed.primary.node_id == "d"
    why = placed.explain("upload x")
    assert "the 2 best-scored of 4 candidate nodes (a 1.00, b 1.00)" in why
    assert "the primary d relayed it and kept none, chosen of the other candidates" in why
    assert "100 bytes relayed before" in why


@pytest.mark.parametrize(("keep_copy", "count"), [(False, 4), (True, 4), (False, 7), (True, 5)])
def test_stored_bytes_stay_balanced_and_the_primary_rotates(keep_copy: bool, count: int) -> None:
    """A closed loop of placements as the manager runs it: reservations while in flight,
    landed bytes after commit, a probe now and then; uploads of uneven sizes."""
    stored = dict.fromkeys([f"n{i}" for i in range(count)], 0)
    relayed = dict.fromkeys(stored, 0)
    landed = dict.fromkeys(stored, 0)
    primaries: dict[str, int] = dict.fromkeys(stored, 0)
    for i in range(200):
        size = 1_000 + (i * 7_919) % 50_000
        # The last probe's stored bytes miss what landed since.
        views = [
            node(n, stored=stored[n] - landed[n], landed=landed[n], relayed=relayed[n])
            for n in stored
        ]
        placed = choose(
            views,
            size=size,
            weights=Weights(),
            factor=2,
            primary_keeps_copy=keep_copy,
            min_free_bytes=0,
        )
        primaries[placed.primary.node_id] += 1
        relayed[placed.primary.node_id] += size
        for holder in placed.copy_holders:
            stored[holder.node_id] += size
            landed[holder.node_id] += size
        if i % 5 == 4:
            landed = dict.fromkeys(stored, 0)  # a probe: stored bytes include what landed
    assert min(stored.values()) > 0
    assert max(stored.values()) / min(stored.values()) <= 1.5
    assert min(primaries.values()) > 0
    assert max(primaries.values()) <= 2 * 200 / count


def test_not_enough_nodes_names_what_is_needed() -> None:
    nodes = [node("a"), node("b"), node("c", ready=False)]
    with pytest.raises(NotEnoughNodes) as info:
        choose(
            nodes, size=1, weights=Weights(), factor=2, primary_keeps_copy=False, min_free_bytes=0
        )
    assert str(info.value) == (
        "need 3 ready storage nodes with room for replication factor 2, have 2"
    )
    with pytest.raises(NotEnoughNodes, match=r"need 3 ready .* factor 3, have 2"):
        choose(
            nodes, size=1, weights=Weights(), factor=3, primary_keeps_copy=True, min_free_bytes=0
        )
    placed = choose(
        nodes, size=1, weights=Weights(), factor=2, primary_keeps_copy=True, min_free_bytes=0
    )
    assert len(placed.nodes) == 2


def test_restore_order_is_ready_holders_best_first() -> None:
    holders = [
        node("far", latency=0.05),
        node("near", latency=0.001),
        node("dead", latency=0.0, ready=False),
        node("leaving", latency=0.002, draining=True),
    ]
    order = restore_order(holders, Weights(latency=1.0, stored_bytes=0.0))
    assert [n.node_id for n in order] == ["near", "leaving", "far"]


def test_terms_are_each_nodes_normalised_latency_and_stored_bytes() -> None:
    nodes = [
        node("a", latency=0.010, stored=400),
        node("b", latency=0.020, stored=100, in_flight=100),
        node("c", latency=0.040, stored=0),
    ]
    got = terms(nodes)
    # min / value: 1 for the best; a node with nothing stored scores 1 on that term.
    assert [(t.latency, t.stored) for t in got] == [(1.0, 0.0), (0.5, 0.0), (0.25, 1.0)]
    weights = Weights(latency=0.3, stored_bytes=0.7)
    assert {n.node_id: t.score(weights) for n, t in zip(nodes, got, strict=True)} == scores(
        nodes, weights
    )
    assert terms([]) == []
