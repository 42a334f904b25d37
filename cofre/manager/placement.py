"""Where chunks go: the seed's score over the nodes (pure; no I/O).

score = w_lat · (min latency / node latency) + w_bytes · (min stored / node stored), where the
minimums run over the candidates and a node whose value is zero scores 1 on that term. Stored
bytes count the bytes of uploads in flight reserved on the node, and those committed since its
last probe, so parallel and back-to-back uploads spread.

The copies go to the F best-scored candidates. The primary, which receives the upload and relays
it, is chosen apart: among the other candidates (or, when it keeps a copy, among the F) by the
same formula with the bytes it relayed as primary in place of the bytes it stores. Letting the
best-scored node be the primary, as the seed did, starves it: a primary that keeps no copy stays
the emptiest, so it is the primary again and again and never stores anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cofre.errors import NotEnoughNodes
from cofre.models import NodeId


@dataclass(frozen=True, slots=True)
class NodeView:
    """What placement needs to know about one node."""

    node_id: NodeId
    url: str
    ready: bool
    draining: bool
    latency_s: float
    stored_bytes: int
    free_bytes: int
    in_flight_bytes: int = 0
    # Committed since the node's last probe: on its disk, not yet in ``stored_bytes``.
    landed_bytes: int = 0
    # Relayed as primary since the manager started, in flight included.
    relayed_bytes: int = 0

    @property
    def load_bytes(self) -> int:
        return self.stored_bytes + self.in_flight_bytes + self.landed_bytes

    @property
    def room_bytes(self) -> int:
        # In-flight reservations will land on the disk, so they eat into the free space too.
        return self.free_bytes - self.in_flight_bytes


@dataclass(frozen=True, slots=True)
class Weights:
    latency: float = 0.5
    stored_bytes: float = 0.5


@dataclass(frozen=True, slots=True)
class Placement:
    primary: NodeView
    replicas: tuple[NodeView, ...]
    keep_copy: bool
    # The copy holders' scores, how many candidates they were the best of, and the primary's
    # score on latency and bytes relayed.
    scores: Mapping[NodeId, float] = field(default_factory=dict)
    candidates: int = 0
    primary_score: float = 0.0

    def explain(self, upload: str) -> str:
        """Why these nodes: the reason recorded with every copy ``upload`` places."""
        holders = self.copy_holders
        scored = ", ".join(f"{n.node_id} {self.scores.get(n.node_id, 0.0):.2f}" for n in holders)
        role = "kept a copy" if self.keep_copy else "relayed it and kept none"
        among = "of the copy holders" if self.keep_copy else "of the other candidates"
        return (
            f"placed by {upload}: the {len(holders)} best-scored of {self.candidates} "
            f"candidate nodes ({scored}); the primary {self.primary.node_id} {role}, chosen "
            f"{among} for latency and bytes relayed (score {self.primary_score:.2f}, "
            f"{self.primary.relayed_bytes} bytes relayed before)"
        )

    @property
    def nodes(self) -> tuple[NodeView, ...]:
        return (self.primary, *self.replicas)

    @property
    def copy_holders(self) -> tuple[NodeView, ...]:
        """The nodes that end up with every chunk of the upload."""
        return self.nodes if self.keep_copy else self.replicas


def candidates(nodes: Iterable[NodeView], *, size: int, min_free_bytes: int) -> list[NodeView]:
    """Ready, not draining, with room for ``size`` bytes plus the headroom."""
    return [
        n for n in nodes if n.ready and not n.draining and n.room_bytes >= size + min_free_bytes
    ]


def _term(minimum: float, value: float) -> float:
    if value <= 0:
        return 1.0
    return minimum / value


@dataclass(frozen=True, slots=True)
class Terms:
    """A node's two normalised terms, each in (0, 1], 1 for the best candidate."""

    latency: float
    stored: float

    def score(self, weights: Weights) -> float:
        return weights.latency * self.latency + weights.stored_bytes * self.stored


def terms(nodes: Sequence[NodeView]) -> list[Terms]:
    """Each node's terms against the others, in the order given."""
    if not nodes:
        return []
    min_latency = min(n.latency_s for n in nodes)
    min_stored = min(n.load_bytes for n in nodes)
    return [Terms(_term(min_latency, n.latency_s), _term(min_stored, n.load_bytes)) for n in nodes]


def rank(nodes: Sequence[NodeView], weights: Weights) -> list[tuple[NodeView, float]]:
    """Score ``nodes`` against each other, best first; ties go to the smaller node id."""
    scored = [(n, t.score(weights)) for n, t in zip(nodes, terms(nodes), strict=True)]
    scored.sort(key=lambda pair: (-pair[1], pair[0].node_id))
    return scored


def nodes_needed(*, factor: int, primary_keeps_copy: bool) -> int:
    return factor if primary_keeps_copy else factor + 1


Scored = tuple[NodeView, float]


def _best(
    nodes: Sequence[NodeView], count: int, load: Callable[[NodeView], int], weights: Weights
) -> list[Scored]:
    """The ``count`` best of ``nodes`` by the seed's formula over latency and ``load``, best
    first, ties to the smaller node id. Vectorised and O(n): a decision over 10,000 nodes is a
    few milliseconds, where scoring node by node in Python took tens."""
    if not nodes or count <= 0:
        return []
    size = len(nodes)
    latency = np.fromiter((n.latency_s for n in nodes), np.float64, size)
    loads = np.fromiter((load(n) for n in nodes), np.float64, size)
    score = weights.latency * _terms(latency) + weights.stored_bytes * _terms(loads)
    if count < size:
        # Everything scoring at least the count-th best, ties included, then an exact order.
        kth = np.partition(score, size - count)[size - count]
        picked = np.flatnonzero(score >= kth)
    else:
        picked = np.arange(size)
    ordered = sorted(picked.tolist(), key=lambda i: (-score[i], nodes[i].node_id))
    return [(nodes[i], float(score[i])) for i in ordered[:count]]


def _terms(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """min / value for each value; 1 where the value is zero (as ``_term``)."""
    positive = values > 0
    safe = np.where(positive, values, 1.0)
    return np.where(positive, values.min() / safe, 1.0)


def _stored(node: NodeView) -> int:
    return node.load_bytes


def _relayed(node: NodeView) -> int:
    return node.relayed_bytes


def choose(
    nodes: Iterable[NodeView],
    *,
    size: int,
    weights: Weights,
    factor: int,
    primary_keeps_copy: bool,
    min_free_bytes: int,
) -> Placement:
    """The F best-scored nodes get the copies; the primary is the best of the others (or of
    those F, when it keeps a copy) by latency and bytes relayed."""
    pool = candidates(nodes, size=size, min_free_bytes=min_free_bytes)
    need = nodes_needed(factor=factor, primary_keeps_copy=primary_keeps_copy)
    if len(pool) < need:
        raise NotEnoughNodes(
            f"need {need} ready storage nodes with room for replication factor {factor}, "
            f"have {len(pool)}",
            needed=need,
            available=len(pool),
        )
    holders = _best(pool, factor, _stored, weights)
    if primary_keeps_copy:
        [(primary, primary_score)] = _best([n for n, _ in holders], 1, _relayed, weights)
        replicas = tuple(n for n, _ in holders if n is not primary)
    else:
        chosen = {n.node_id for n, _ in holders}
        others = [n for n in pool if n.node_id not in chosen]
        [(primary, primary_score)] = _best(others, 1, _relayed, weights)
        replicas = tuple(n for n, _ in holders)
    return Placement(
        primary=primary,
        replicas=replicas,
        keep_copy=primary_keeps_copy,
        scores={n.node_id: score for n, score in holders},
        candidates=len(pool),
        primary_score=primary_score,
    )


def restore_order(holders: Iterable[NodeView], weights: Weights) -> list[NodeView]:
    """Ready nodes holding a chunk, best to read from first (draining nodes still serve)."""
    return [n for n, _ in rank([n for n in holders if n.ready], weights)]
