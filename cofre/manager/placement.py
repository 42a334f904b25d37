"""Where chunks go: the seed's score over the nodes (pure; no I/O).

score = w_lat · (min latency / node latency) + w_bytes · (min stored / node stored), where the
minimums run over the candidates and a node whose value is zero scores 1 on that term. Stored
bytes count the bytes of uploads in flight reserved on the node, so parallel uploads spread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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

    @property
    def load_bytes(self) -> int:
        return self.stored_bytes + self.in_flight_bytes

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
    # The chosen nodes' scores, and how many candidates they were the best of.
    scores: Mapping[NodeId, float] = field(default_factory=dict)
    candidates: int = 0

    def explain(self, upload: str) -> str:
        """Why these nodes: the reason recorded with every copy ``upload`` places."""
        scored = ", ".join(f"{n.node_id} {self.scores.get(n.node_id, 0.0):.2f}" for n in self.nodes)
        role = "kept a copy" if self.keep_copy else "relayed it and kept none"
        return (
            f"placed by {upload}: the {len(self.nodes)} best-scored of {self.candidates} "
            f"candidate nodes ({scored}); the primary {self.primary.node_id} {role}"
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


def choose(
    nodes: Iterable[NodeView],
    *,
    size: int,
    weights: Weights,
    factor: int,
    primary_keeps_copy: bool,
    min_free_bytes: int,
) -> Placement:
    """The best node is the primary, the next ones its replicas."""
    pool = candidates(nodes, size=size, min_free_bytes=min_free_bytes)
    need = nodes_needed(factor=factor, primary_keeps_copy=primary_keeps_copy)
    if len(pool) < need:
        raise NotEnoughNodes(
            f"need {need} ready storage nodes with room for replication factor {factor}, "
            f"have {len(pool)}",
            needed=need,
            available=len(pool),
        )
    ranked = rank(pool, weights)[:need]
    best = [n for n, _ in ranked]
    return Placement(
        primary=best[0],
        replicas=tuple(best[1:]),
        keep_copy=primary_keeps_copy,
        scores={n.node_id: score for n, score in ranked},
        candidates=len(pool),
    )


def restore_order(holders: Iterable[NodeView], weights: Weights) -> list[NodeView]:
    """Ready nodes holding a chunk, best to read from first (draining nodes still serve)."""
    return [n for n, _ in rank([n for n in holders if n.ready], weights)]
