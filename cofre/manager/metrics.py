"""The manager's Prometheus metrics (docs/metrics.md lists them).

What the manager holds already is read at scrape time: each node's probe results, placement
score and state from the registry, the catalog's sizes and open uploads from SQLite, the loops'
passes from their ``Periodic``. Events (placements, probes, GC, copies, repair passes) are
counted where they happen, through the methods here; chunk states are set whenever a full fsck
or the cluster stats count them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cofre.aio import Periodic
from cofre.manager.placement import Placement, candidates, terms
from cofre.models import NodeId
from cofre.protocol.access import Principal
from cofre.protocol.api import Operation
from cofre.protocol.base import ChunkStatus
from cofre.protocol.manager_api import DrainStatus, ReplicationWindow
from cofre.protocol.metrics import LoopCollector, request_histogram, request_middleware

if TYPE_CHECKING:
    from cofre.manager.context import Manager

PREFIX = "cofre_manager"
# Seconds: a probe on one LAN answers in about a millisecond; the probe timeout is 2 s.
PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
STATES: tuple[ChunkStatus, ...] = ("ok", "under_replicated", "missing", "corrupt")


class _NodesCollector(Collector):
    """One series per known node, from the registry as it is at scrape time."""

    def __init__(self, metrics: ManagerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        def family(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_node_{name}", text, labels=["node"])

        stored = family("stored_bytes", "Bytes a node stores, as its last good probe said.")
        free = family("free_bytes", "Free bytes on a node's volume, as its last good probe said.")
        in_flight = family(
            "in_flight_bytes", "Bytes reserved on a node for uploads in flight (placement's view)."
        )
        ready = family("ready", "1 while a node is ready (discovered ready and answering probes).")
        draining = family("draining", "1 while a node is draining.")
        latency = family(
            "probe_latency_seconds",
            "A node's probe latency, smoothed (the value placement scores).",
        )
        score = family(
            "placement_score",
            "A node's placement score among the current candidates (the latency and the "
            "stored-bytes terms summed); absent for a node that is not a candidate.",
        )
        latency_term = family(
            "placement_latency_term",
            "The latency term of a node's score: its weight times the fastest candidate's "
            "latency over the node's.",
        )
        stored_term = family(
            "placement_stored_term",
            "The stored-bytes term of a node's score: its weight times the least-loaded "
            "candidate's bytes over the node's (stored and reserved).",
        )
        used = GaugeMetricFamily(
            f"{PREFIX}_cluster_used_bytes",
            "Bytes the ready nodes store together, as their last good probes said.",
        )
        capacity = GaugeMetricFamily(
            f"{PREFIX}_cluster_capacity_bytes",
            "Bytes the ready nodes store and have free together: the cluster's capacity.",
        )
        m = self._metrics.manager
        if m is not None:
            ready_stats = [s.stats for s in m.registry.ready_nodes() if s.stats]
            used.add_metric([], sum(s.stored_bytes for s in ready_stats))
            capacity.add_metric([], sum(s.stored_bytes + s.free_bytes for s in ready_stats))
            views = m.registry.views()
            pool = candidates(views, size=0, min_free_bytes=m.config.placement.min_free_bytes)
            w = m.weights
            weighted = {
                v.node_id: (w.latency * t.latency, w.stored_bytes * t.stored)
                for v, t in zip(pool, terms(pool), strict=True)
            }
            for view in views:
                node = [view.node_id]
                state = m.registry.nodes[view.node_id]
                stored.add_metric(node, view.stored_bytes)
                free.add_metric(node, view.free_bytes)
                in_flight.add_metric(node, view.in_flight_bytes)
                ready.add_metric(node, 1 if view.ready else 0)
                draining.add_metric(node, 1 if view.draining else 0)
                if state.latency_s is not None:
                    latency.add_metric(node, state.latency_s)
                if view.node_id in weighted:
                    by_latency, by_bytes = weighted[view.node_id]
                    score.add_metric(node, by_latency + by_bytes)
                    latency_term.add_metric(node, by_latency)
                    stored_term.add_metric(node, by_bytes)
        yield from (stored, free, in_flight, ready, draining, latency, score)
        yield from (latency_term, stored_term, used, capacity)


class ManagerMetrics:
    """One manager app's registry and the metrics counted where events happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Set once the app has them: the scrape reads their state.
        self.manager: Manager | None = None
        self.loops: list[Periodic] = []
        self.requests = request_histogram(PREFIX, r)
        self.middleware = request_middleware(self.requests)
        self.probe_latency = Histogram(
            f"{PREFIX}_probe_latency_seconds",
            "Latency of each successful probe of a node (GET /v1/stats), unsmoothed.",
            ["node"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.placements = Counter(
            f"{PREFIX}_placements_total",
            "Uploads placed on a node, by its role in the upload (primary or replica).",
            ["node", "role"],
            registry=r,
        )
        self.placed_bytes = Counter(
            f"{PREFIX}_placed_bytes_total",
            "Bytes of the uploads placed on a node (as declared), by its role.",
            ["node", "role"],
            registry=r,
        )
        self.chunks = Gauge(
            f"{PREFIX}_chunks",
            "Live chunks (data and manifests) by state. source=fsck: as the nodes confirmed "
            "in the last full fsck; source=catalog: by the copies the catalog records on ready "
            "nodes, each time the cluster stats are asked for (corrupt is never known there).",
            ["state", "source"],
            registry=r,
        )
        self.chunks_counted = Gauge(
            f"{PREFIX}_chunks_counted_timestamp_seconds",
            "When the chunk states of a source were last counted (Unix time).",
            ["source"],
            registry=r,
        )
        self.drain_chunks_left = Gauge(
            f"{PREFIX}_drain_left_chunks",
            "Live chunks on draining nodes still short of F copies elsewhere (0: no drain "
            "left), as of the last drain pass or status.",
            registry=r,
        )
        self.drain_bytes_left = Gauge(
            f"{PREFIX}_drain_left_bytes", "Bytes of those chunks.", registry=r
        )
        self.copies_made = Counter(
            f"{PREFIX}_copies_made_total",
            "Chunk copies made and verified on a new node, by why (drain or repair).",
            ["reason"],
            registry=r,
        )
        self.copies_stuck = Counter(
            f"{PREFIX}_copies_stuck_total",
            "Chunks a pass could not copy (no source or no target), by why.",
            ["reason"],
            registry=r,
        )
        self.repair_passes = Counter(
            f"{PREFIX}_repair_passes_total",
            "Repair passes: full (every live chunk checked on the nodes), lost_nodes (chunks "
            "on nodes unready or gone for repair.after_s), scrub (copies a node's scrub found "
            "corrupt) or refill (the chunks of a node that came back empty).",
            ["kind"],
            registry=r,
        )
        self.window_open_since = Gauge(
            f"{PREFIX}_under_replicated_since_timestamp_seconds",
            "When the window with live chunks short of F good copies now open began (Unix "
            "time); 0 while none is open.",
            registry=r,
        )
        self.window_last = Gauge(
            f"{PREFIX}_under_replicated_last_window_seconds",
            "How long the last closed window with chunks short of F copies lasted.",
            registry=r,
        )
        self.window_longest = Gauge(
            f"{PREFIX}_under_replicated_longest_window_seconds",
            "The longest window with chunks short of F copies since the manager started (the "
            "open one included).",
            registry=r,
        )
        self.window_episodes = Gauge(
            f"{PREFIX}_under_replicated_windows",
            "Windows with chunks short of F copies begun since the manager started.",
            registry=r,
        )
        self.auth_refused = Counter(
            f"{PREFIX}_auth_refused_total",
            "Requests refused because the key's role is below what the operation needs, by "
            "the key's role and the operation (its OpenAPI operationId).",
            ["role", "operation"],
            registry=r,
        )
        self.gc_runs = Counter(
            f"{PREFIX}_gc_runs_total", "Garbage collection passes that finished.", registry=r
        )
        self.gc_deleted_chunks = Counter(
            f"{PREFIX}_gc_deleted_chunks_total", "Chunks GC deleted from nodes.", registry=r
        )
        self.gc_freed_bytes = Counter(
            f"{PREFIX}_gc_freed_bytes_total", "Bytes GC freed on nodes.", registry=r
        )
        self.catalog_files = Gauge(
            f"{PREFIX}_catalog_files", "Names with a live version (at scrape time).", registry=r
        )
        self.catalog_versions = Gauge(
            f"{PREFIX}_catalog_versions", "Live versions (at scrape time).", registry=r
        )
        self.catalog_snapshots = Gauge(
            f"{PREFIX}_catalog_snapshots", "Committed tree snapshots (at scrape time).", registry=r
        )
        self.catalog_live_chunks = Gauge(
            f"{PREFIX}_catalog_live_chunks",
            "Distinct chunks live versions and snapshots reference, manifests included (at "
            "scrape time).",
            registry=r,
        )
        self.last_commit = Gauge(
            f"{PREFIX}_last_commit_timestamp_seconds",
            "When the newest version or snapshot in the catalog was committed (unix seconds; 0 "
            "while the catalog holds none). Alerts on backups that stopped.",
            registry=r,
        )
        self.open_uploads = Gauge(
            f"{PREFIX}_open_uploads",
            "Upload sessions open (placed, not yet committed, aborted or expired).",
            registry=r,
        )
        r.register(_NodesCollector(self))
        r.register(LoopCollector(PREFIX, lambda: self.loops))

    # events ----------------------------------------------------------------------------------

    def refused(self, who: Principal, op: Operation) -> None:
        self.auth_refused.labels(role=who.role.value, operation=op.operation_id).inc()

    def probed(self, node: NodeId, seconds: float) -> None:
        self.probe_latency.labels(node).observe(seconds)

    def placed(self, placement: Placement, size: int) -> None:
        roles = [(placement.primary, "primary"), *((r, "replica") for r in placement.replicas)]
        for view, role in roles:
            self.placements.labels(view.node_id, role).inc()
            self.placed_bytes.labels(view.node_id, role).inc(size)

    def fsck_states(self, counts: Mapping[str, int]) -> None:
        """A full fsck classified every live chunk: ``counts`` per state."""
        self._states("fsck", {s: counts.get(s, 0) for s in STATES})

    def catalog_states(self, copies_on_ready: Iterable[int], *, factor: int) -> None:
        """Every live chunk's number of recorded copies on ready nodes."""
        counts = dict.fromkeys(("ok", "under_replicated", "missing"), 0)
        for n in copies_on_ready:
            counts["ok" if n >= factor else "under_replicated" if n else "missing"] += 1
        self._states("catalog", counts)

    def _states(self, source: str, counts: Mapping[str, int]) -> None:
        for state, count in counts.items():
            self.chunks.labels(state, source).set(count)
        self.chunks_counted.labels(source).set(time.time())

    def drain_left(self, status: DrainStatus) -> None:
        self.drain_chunks_left.set(status.chunks_left)
        self.drain_bytes_left.set(status.bytes_left)

    def copied(self, reason: str, *, made: int, stuck: int) -> None:
        self.copies_made.labels(reason).inc(made)
        self.copies_stuck.labels(reason).inc(stuck)

    def window(self, window: ReplicationWindow) -> None:
        self.window_open_since.set(window.open_since or 0.0)
        self.window_last.set(window.last_s or 0.0)
        self.window_longest.set(window.longest_s)
        self.window_episodes.set(window.episodes)

    def gc_done(self, *, deleted: int, freed: int) -> None:
        self.gc_runs.inc()
        self.gc_deleted_chunks.inc(deleted)
        self.gc_freed_bytes.inc(freed)

    # scrape ----------------------------------------------------------------------------------

    async def scrape(self) -> CollectorRegistry:
        """Refresh what needs the catalog (a few COUNT queries), then the registry to render."""
        m = self.manager
        if m is not None and m.catalog.is_open:
            files, versions = await m.catalog.counts()
            self.catalog_files.set(files)
            self.catalog_versions.set(versions)
            self.catalog_snapshots.set(await m.catalog.snapshot_count())
            self.catalog_live_chunks.set(await m.catalog.live_chunk_count())
            self.last_commit.set(await m.catalog.last_commit_time() or 0.0)
            self.open_uploads.set(len(await m.catalog.open_sessions()))
        return self.registry


METRICS = web.AppKey("metrics", ManagerMetrics)


async def scrape(request: web.Request) -> CollectorRegistry:
    return await request.app[METRICS].scrape()
