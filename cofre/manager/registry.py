"""The manager's live view of the storage nodes: discovery, probe results, reservations, drains."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from cofre.manager.capacity import UsageHistory, UsageSample
from cofre.manager.placement import NodeView, Weights, candidates, rank, terms
from cofre.models import ChunkHash, NodeEndpoint, NodeId, UploadId
from cofre.protocol.manager_api import NodeStatus
from cofre.protocol.node_api import NodeStats

log = logging.getLogger(__name__)


@dataclass(slots=True)
class NodeState:
    node_id: NodeId
    url: str
    discovered_ready: bool
    probe_ok: bool = False
    failures: int = 0
    latency_s: float | None = None
    stats: NodeStats | None = None
    # Unix time the node last stopped being ready (None while ready or never ready): when the
    # copies it holds stopped counting.
    unready_since: float | None = None
    # The scrub findings read so far: (the node process's scrub start, the last finding seen).
    scrub_seen: tuple[float, int] | None = None
    # Chunks the node's scrub found corrupt that no repair took up yet (hash -> found at).
    scrub_findings: dict[ChunkHash, float] = field(default_factory=dict)
    # Committed onto the node since its last probe: on its disk, not yet in ``stats``.
    landed_bytes: int = 0
    # Relayed as primary (placed, in flight included) since the manager started: placement
    # rotates the primary role by it.
    relayed_bytes: int = 0
    # Just probed fresh and may hold far fewer chunks than the catalog records there (its
    # first answer, back from unready, restarted, or its count halved): the refill pass
    # compares it with the catalog.
    refill_check: bool = False
    # Findings were missed (more than a node keeps): the refill pass checks all its chunks.
    refill_all: bool = False

    @property
    def ready(self) -> bool:
        return self.discovered_ready and self.probe_ok and self.latency_s is not None

    def take_stats(self, stats: NodeStats, *, was_ready: bool) -> bool:
        """Keep a good probe's answer; -> whether the refill pass should look now: new scrub
        findings, or a node that may have lost its store (its first answer, back from unready,
        restarted, or its chunk count halved), which that pass compares with the catalog."""
        before = self.stats
        self.stats = stats
        # The probe's stored bytes now count what landed; one committed while this probe was
        # on its way is missed until the next probe, seconds later.
        self.landed_bytes = 0
        scrub = stats.scrub
        restarted = (
            scrub is not None
            and self.scrub_seen is not None
            and self.scrub_seen[0] != scrub.started_at
        )
        dropped = before is not None and stats.chunk_count < before.chunk_count // 2
        if before is None or not was_ready or restarted or dropped:
            self.refill_check = True
        if scrub is not None:
            seen = 0 if self.scrub_seen is None or restarted else self.scrub_seen[1]
            new = [f for f in scrub.findings if f.seq > seen]
            if scrub.findings_total > seen and (not new or new[0].seq > seen + 1):
                log.warning(
                    "scrub findings missed node=%s seen=%d total=%d",
                    self.node_id,
                    seen,
                    scrub.findings_total,
                )
                self.refill_all = True
            for finding in new:
                self.scrub_findings.setdefault(finding.hash, finding.at)
            if new:
                log.warning("scrub found corrupt copies node=%s chunks=%d", self.node_id, len(new))
            self.scrub_seen = (scrub.started_at, scrub.findings_total)
        return self.refill_check or self.refill_all or bool(self.scrub_findings)


class Registry:
    """Mutable state shared by the request handlers and the background loops (one event loop)."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, NodeState] = {}
        self.draining: set[NodeId] = set()
        # upload -> (bytes, the nodes that will hold its copies)
        self._reservations: dict[UploadId, tuple[int, tuple[NodeId, ...]]] = {}
        self._in_flight: dict[NodeId, int] = {}
        # Set when discovery changes the node set, so the prober probes new nodes at once.
        self.changed = asyncio.Event()
        # Set when a probe saw something the refill pass must look at (scrub findings, a node
        # that came back or lost its store, a node that stopped being ready).
        self.refill_wakeup = asyncio.Event()
        # node -> monotonic time since when it has been unready or absent (repair's clock).
        self._unavailable_since: dict[NodeId, float] = {}
        # Used bytes of the ready nodes over time, for the capacity forecast.
        self.usage = UsageHistory()

    # discovery -------------------------------------------------------------------------------

    def update_endpoints(self, endpoints: Iterable[NodeEndpoint]) -> None:
        seen: set[NodeId] = set()
        for ep in endpoints:
            seen.add(ep.node_id)
            state = self.nodes.get(ep.node_id)
            if state is None:
                self.nodes[ep.node_id] = NodeState(ep.node_id, ep.url, ep.ready)
                log.info("node discovered node=%s url=%s ready=%s", ep.node_id, ep.url, ep.ready)
                continue
            if state.url != ep.url:
                log.info("node moved node=%s url=%s", ep.node_id, ep.url)
                state.url = ep.url
                state.probe_ok = False
                state.latency_s = None
            if state.discovered_ready != ep.ready:
                log.info("node discovery readiness node=%s ready=%s", ep.node_id, ep.ready)
                state.discovered_ready = ep.ready
        for gone in set(self.nodes) - seen:
            log.info("node gone node=%s", gone)
            del self.nodes[gone]
        self.changed.set()

    # availability ----------------------------------------------------------------------------

    def lost_nodes(self, holders: Iterable[NodeId], *, after_s: float) -> set[NodeId]:
        """Nodes among ``holders`` (and known ones) unready or absent for ``after_s`` or more.

        A node the manager has never seen (gone before a restart) starts its clock now.
        """
        now = time.monotonic()
        for node_id in {*holders, *self.nodes}:
            state = self.nodes.get(node_id)
            if state is not None and state.ready:
                self._unavailable_since.pop(node_id, None)
            else:
                self._unavailable_since.setdefault(node_id, now)
        return {n for n, since in self._unavailable_since.items() if now - since >= after_s}

    def record_usage(self, now: float) -> None:
        """Sample the ready nodes' used and total bytes (after each probe pass)."""
        ready = [s for s in self.ready_nodes() if s.stats]
        used = sum(s.stats.stored_bytes for s in ready if s.stats)
        free = sum(s.stats.free_bytes for s in ready if s.stats)
        self.usage.record(
            UsageSample(at=now, used_bytes=used, capacity_bytes=used + free),
            nodes=frozenset(s.node_id for s in ready),
        )

    # reservations ----------------------------------------------------------------------------

    def reserve(
        self,
        upload_id: UploadId,
        size: int,
        holders: Iterable[NodeId],
        *,
        relay: NodeId | None = None,
    ) -> None:
        """Count ``size`` bytes on the nodes that will hold the copies until the upload ends,
        and on the primary ``relay``'s bytes relayed for good."""
        self.release(upload_id)
        nodes = tuple(holders)
        self._reservations[upload_id] = (size, nodes)
        for node_id in nodes:
            self._in_flight[node_id] = self._in_flight.get(node_id, 0) + size
        if relay is not None and (state := self.nodes.get(relay)) is not None:
            state.relayed_bytes += size

    def release(self, upload_id: UploadId, *, landed: bool = False) -> None:
        """The upload ended; ``landed``: committed, so its bytes are on the holders' disks
        until their next probe says so."""
        size, nodes = self._reservations.pop(upload_id, (0, ()))
        for node_id in nodes:
            left = self._in_flight.get(node_id, 0) - size
            if left > 0:
                self._in_flight[node_id] = left
            else:
                self._in_flight.pop(node_id, None)
            if landed and (state := self.nodes.get(node_id)) is not None:
                state.landed_bytes += size

    def in_flight(self, node_id: NodeId) -> int:
        return self._in_flight.get(node_id, 0)

    # views -----------------------------------------------------------------------------------

    def view(self, state: NodeState) -> NodeView:
        stats = state.stats
        return NodeView(
            node_id=state.node_id,
            url=state.url,
            ready=state.ready,
            draining=state.node_id in self.draining,
            latency_s=state.latency_s if state.latency_s is not None else 0.0,
            stored_bytes=stats.stored_bytes if stats else 0,
            free_bytes=stats.free_bytes if stats else 0,
            in_flight_bytes=self.in_flight(state.node_id),
            landed_bytes=state.landed_bytes,
            relayed_bytes=state.relayed_bytes,
        )

    def views(self) -> list[NodeView]:
        return [self.view(s) for s in self.nodes.values()]

    def ready_nodes(self) -> list[NodeState]:
        return [s for s in self.nodes.values() if s.ready]

    def url_of(self, node_id: NodeId) -> str | None:
        state = self.nodes.get(node_id)
        return state.url if state else None

    def statuses(self, weights: Weights, *, min_free_bytes: int) -> list[NodeStatus]:
        """Every known node; the score is against the current candidates (None if not one)."""
        views = self.views()
        pool = candidates(views, size=0, min_free_bytes=min_free_bytes)
        scores = {v.node_id: score for v, score in rank(pool, weights)}
        node_terms = {v.node_id: t for v, t in zip(pool, terms(pool), strict=True)}
        out = []
        for view in sorted(views, key=lambda v: v.node_id):
            state = self.nodes[view.node_id]
            term = node_terms.get(view.node_id)
            scrub = state.stats.scrub if state.stats else None
            out.append(
                NodeStatus(
                    node_id=view.node_id,
                    url=view.url,
                    ready=view.ready,
                    draining=view.draining,
                    stored_bytes=view.stored_bytes,
                    free_bytes=view.free_bytes,
                    in_flight_bytes=view.in_flight_bytes,
                    latency_ms=None if state.latency_s is None else state.latency_s * 1000.0,
                    score=scores.get(view.node_id),
                    chunk_count=state.stats.chunk_count if state.stats else 0,
                    scrub_enabled=scrub.enabled if scrub else None,
                    scrub_cycle_bytes=scrub.cycle_bytes if scrub else 0,
                    scrub_cycle_chunks=scrub.cycle_chunks if scrub else 0,
                    scrub_cycle_progress=scrub.cycle_progress if scrub else None,
                    scrub_cycle_s=scrub.cycle_s if scrub else None,
                    scrub_cycle_started_at=scrub.cycle_started_at if scrub else None,
                    scrub_last_full_pass_at=scrub.last_full_pass_at if scrub else None,
                    scrub_findings=scrub.findings_total if scrub else 0,
                    latency_term=term.latency if term else None,
                    stored_term=term.stored if term else None,
                )
            )
        return out
