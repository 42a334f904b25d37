"""GC cutoff and garbage, fsck classification, drain decisions (pure)."""

from __future__ import annotations

from cofre.manager.catalog import LiveChunk
from cofre.manager.drain import copies_needed, drain_status, pick_target
from cofre.manager.gc import garbage, gc_cutoff
from cofre.manager.health import classify
from cofre.manager.placement import NodeView, Weights
from cofre.models import ChunkHash, NodeId
from cofre.protocol.manager_api import NodeDrain
from cofre.protocol.node_api import InventoryEntry


def test_gc_cutoff_is_grace_bounded_by_the_oldest_open_upload() -> None:
    assert gc_cutoff(now=1000.0, grace_s=100.0, oldest_open_upload=None) == 900.0
    # An open upload bounds it, with a margin for clock skew between manager and nodes.
    assert gc_cutoff(now=1000.0, grace_s=100.0, oldest_open_upload=500.0) == 500.0 - 60.0
    assert gc_cutoff(now=1000.0, grace_s=100.0, oldest_open_upload=990.0) == 900.0
    assert gc_cutoff(now=1000.0, grace_s=0.0, oldest_open_upload=None) == 1000.0


def test_garbage_is_what_no_live_version_references() -> None:
    a, b, c = (ChunkHash(x * 64) for x in "abc")
    inventory = [InventoryEntry(hash=h, length=1, mtime=0.0) for h in (a, b, c)]
    assert garbage(inventory, {b}) == [a, c]
    assert garbage([], {ChunkHash("b")}) == []


def test_fsck_classification() -> None:
    assert classify(good=2, corrupt=0, factor=2) == "ok"
    assert classify(good=3, corrupt=1, factor=2) == "ok"
    assert classify(good=1, corrupt=0, factor=2) == "under_replicated"
    assert classify(good=0, corrupt=0, factor=2) == "missing"
    assert classify(good=1, corrupt=1, factor=2) == "corrupt"
    assert classify(good=0, corrupt=2, factor=2) == "corrupt"
    assert classify(good=1, corrupt=0, factor=1) == "ok"


def _chunk(name: str, *holders: str, length: int = 10) -> LiveChunk:
    return LiveChunk(ChunkHash(name), length, frozenset(NodeId(h) for h in holders))


def _view(name: str, *, draining: bool = False, ready: bool = True, stored: int = 0) -> NodeView:
    return NodeView(NodeId(name), f"http://{name}", ready, draining, 0.01, stored, 1 << 30)


def test_copies_needed_counts_only_non_draining_holders() -> None:
    draining = {NodeId("d")}
    assert copies_needed(_chunk("x", "d", "a"), draining=draining, factor=2) == 1
    assert copies_needed(_chunk("x", "d"), draining=draining, factor=2) == 2
    assert copies_needed(_chunk("x", "d", "a", "b"), draining=draining, factor=2) == 0


def test_targets_exclude_holders_draining_and_unready_nodes() -> None:
    views = [
        _view("a"),
        _view("b", stored=10),
        _view("c", stored=5),
        _view("d", draining=True),
        _view("e", ready=False),
    ]
    kwargs = {"length": 10, "weights": Weights(), "min_free_bytes": 0}
    picked = pick_target(views, holders=[NodeId("a"), NodeId("d")], **kwargs)  # type: ignore[arg-type]
    assert picked is not None and picked[0].node_id == "c"
    assert 0.0 < picked[1] <= 1.0
    assert pick_target(views, holders=[NodeId(n) for n in "abc"], **kwargs) is None  # type: ignore[arg-type]


def test_drain_status_per_node() -> None:
    draining = {NodeId("d1"), NodeId("d2")}
    chunks = [
        _chunk("x", "d1", "a", length=5),  # needs one more
        _chunk("y", "d1", "d2", length=7),  # needs two
        _chunk("z", "d2", "a", "b", length=11),  # fine
    ]
    status = drain_status(chunks, draining=draining, factor=2)
    assert status.done is False
    assert (status.chunks_left, status.bytes_left) == (2, 12)
    assert status.nodes["d1"] == NodeDrain(done=False, chunks_left=2, bytes_left=12)
    assert status.nodes["d2"] == NodeDrain(done=False, chunks_left=1, bytes_left=7)
    finished = drain_status(chunks[2:], draining=draining, factor=2)
    assert finished.done is True and finished.nodes["d1"].done is True


def test_lost_nodes_need_to_be_unavailable_long_enough() -> None:
    from cofre.manager.registry import Registry
    from cofre.models import NodeEndpoint

    registry = Registry()
    registry.update_endpoints(
        [NodeEndpoint(NodeId("a"), "http://a"), NodeEndpoint(NodeId("b"), "http://b")]
    )
    registry.nodes[NodeId("a")].probe_ok = True
    registry.nodes[NodeId("a")].latency_s = 0.001
    # b was never probed ok, "gone" is only in the catalog: both unavailable, a is fine.
    assert registry.lost_nodes([NodeId("gone")], after_s=0.0) == {"b", "gone"}
    assert registry.lost_nodes([NodeId("gone")], after_s=3600.0) == set()
    registry.nodes[NodeId("b")].probe_ok = True
    registry.nodes[NodeId("b")].latency_s = 0.001
    assert registry.lost_nodes([], after_s=0.0) == {"gone"}
