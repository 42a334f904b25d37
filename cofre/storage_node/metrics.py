"""The storage node's Prometheus metrics (docs/metrics.md lists them).

What the node holds already (the store's byte and chunk counts and its write totals, the open
relay sessions, the sweeper's passes) is read at scrape time; the chunks it relays, serves and
deletes are counted where that happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cofre.aio import Periodic
from cofre.protocol.metrics import LoopCollector, request_histogram, request_middleware
from cofre.storage_node.relay_sessions import SessionRegistry
from cofre.storage_node.scrub import FINDING_KINDS, Scrubber
from cofre.storage_node.store import ChunkStore

PREFIX = "cofre_node"


@dataclass(frozen=True, slots=True)
class Watched:
    """The node's own state the scrape reads."""

    store: ChunkStore
    sessions: SessionRegistry
    sweeper: Periodic
    scrub: Periodic | None = None
    compact: Periodic | None = None
    scrubber: Scrubber | None = None


class _StateCollector(Collector):
    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        watched = self._metrics.watched
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "stored_bytes": GaugeMetricFamily(
                f"{PREFIX}_stored_bytes", "Bytes of the chunks this node holds."
            ),
            "stored_chunks": GaugeMetricFamily(
                f"{PREFIX}_stored_chunks", "Chunks this node holds."
            ),
            "relay_sessions": GaugeMetricFamily(
                f"{PREFIX}_relay_sessions",
                "Upload sessions open on this node as their primary (relays to replicas).",
            ),
            "received_chunks": CounterMetricFamily(
                f"{PREFIX}_received_chunks",
                "Chunks written to this node's store (a chunk it held already is not written).",
            ),
            "received_bytes": CounterMetricFamily(
                f"{PREFIX}_received_bytes", "Bytes of the chunks written to this node's store."
            ),
            "packs": GaugeMetricFamily(f"{PREFIX}_packs", "Pack files this node's store holds."),
            "pack_bytes": GaugeMetricFamily(
                f"{PREFIX}_pack_bytes",
                "Bytes of this node's pack files on disk (record headers and garbage included).",
            ),
            "pack_garbage_bytes": GaugeMetricFamily(
                f"{PREFIX}_pack_garbage_bytes",
                "Bytes of pack files holding no live chunk (deleted, superseded, rotten) until "
                "compaction rewrites them.",
            ),
            "compacted_packs": CounterMetricFamily(
                f"{PREFIX}_compacted_packs", "Packs rewritten without their garbage."
            ),
            "compaction_copied_bytes": CounterMetricFamily(
                f"{PREFIX}_compaction_copied_bytes",
                "Bytes of live chunks compaction copied to new packs.",
            ),
            "compaction_reclaimed_bytes": CounterMetricFamily(
                f"{PREFIX}_compaction_reclaimed_bytes", "Bytes of disk compaction gave back."
            ),
        }
        if watched is not None:
            store = watched.store
            packs = store.pack_stats()
            values = {
                "packs": packs.packs,
                "pack_bytes": packs.pack_bytes,
                "pack_garbage_bytes": packs.garbage_bytes,
                "compacted_packs": store.packs.compacted_packs,
                "compaction_copied_bytes": store.packs.compacted_bytes,
                "compaction_reclaimed_bytes": store.packs.reclaimed_bytes,
                "stored_bytes": store.stored_bytes,
                "stored_chunks": store.chunk_count,
                "relay_sessions": len(watched.sessions),
                "received_chunks": store.received_chunks,
                "received_bytes": store.received_bytes,
            }
            for key, family in families.items():
                family.add_metric([], values[key])
        yield from families.values()
        yield from _scrub_families(watched.scrubber if watched is not None else None)


def _scrub_families(scrubber: Scrubber | None) -> Iterator[Metric]:
    """The scrub's totals and where its cycle stands, read from the scrubber."""
    enabled = GaugeMetricFamily(
        f"{PREFIX}_scrub_enabled", "1 while the background scrub is on (cycle and budget > 0)."
    )
    chunks = CounterMetricFamily(
        f"{PREFIX}_scrub_chunks", "Chunks the scrub read and re-hashed since the node started."
    )
    size = CounterMetricFamily(f"{PREFIX}_scrub_bytes", "Bytes of the chunks the scrub read.")
    findings = CounterMetricFamily(
        f"{PREFIX}_scrub_findings",
        "Corrupt copies the scrub found (and quarantined), by kind.",
        labels=["kind"],
    )
    cycles = CounterMetricFamily(f"{PREFIX}_scrub_cycles", "Scrub cycles that read every chunk.")
    progress = GaugeMetricFamily(
        f"{PREFIX}_scrub_cycle_progress_ratio", "Share of the current cycle's bytes read, 0..1."
    )
    started = GaugeMetricFamily(
        f"{PREFIX}_scrub_cycle_started_timestamp_seconds",
        "When the current (or last) scrub cycle began; 0 before the first.",
    )
    completed = GaugeMetricFamily(
        f"{PREFIX}_scrub_last_cycle_completed_timestamp_seconds",
        "When a scrub cycle last read every chunk; 0 before one did.",
    )
    if scrubber is not None:
        state = scrubber.state
        enabled.add_metric([], 1 if scrubber.enabled else 0)
        chunks.add_metric([], scrubber.chunks_total)
        size.add_metric([], scrubber.bytes_total)
        for kind in FINDING_KINDS:
            findings.add_metric([kind], scrubber.findings_by_kind[kind])
        cycles.add_metric([], scrubber.cycles_total)
        progress.add_metric([], scrubber.cycle_progress())
        started.add_metric([], state.started_at or 0)
        completed.add_metric([], state.last_full_pass_at or 0)
    yield from (enabled, chunks, size, findings, cycles, progress, started, completed)


class NodeMetrics:
    """One node app's registry and the metrics counted where events happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.watched: Watched | None = None
        self.requests = request_histogram(PREFIX, r)
        self.middleware = request_middleware(self.requests)
        self.relayed_chunks = Counter(
            f"{PREFIX}_relayed_chunks_total",
            "Chunk copies this node, as primary, forwarded to a replica that stored them "
            "(one per replica).",
            registry=r,
        )
        self.relayed_bytes = Counter(
            f"{PREFIX}_relayed_bytes_total",
            "Bytes of the chunk copies forwarded to replicas that stored them.",
            registry=r,
        )
        self.served_chunks = Counter(
            f"{PREFIX}_served_chunks_total",
            "Chunks read from this node (verified before they were sent).",
            registry=r,
        )
        self.served_bytes = Counter(
            f"{PREFIX}_served_bytes_total", "Bytes of the chunks read from this node.", registry=r
        )
        self.deleted_chunks = Counter(
            f"{PREFIX}_deleted_chunks_total", "Chunks deleted from this node (by GC).", registry=r
        )
        self.deleted_bytes = Counter(
            f"{PREFIX}_deleted_bytes_total", "Bytes freed by deleting chunks.", registry=r
        )
        self.free_bytes = Gauge(
            f"{PREFIX}_free_bytes",
            "Free bytes on this node's volume, read at scrape time.",
            registry=r,
        )
        r.register(_StateCollector(self))
        r.register(LoopCollector(PREFIX, self._loops))

    def watch(self, watched: Watched) -> None:
        self.watched = watched

    def _loops(self) -> list[Periodic]:
        if self.watched is None:
            return []
        w = self.watched
        return [w.sweeper, *(loop for loop in (w.scrub, w.compact) if loop is not None)]

    def relayed(self, chunks: int, size: int) -> None:
        """One replica stored ``chunks`` chunks of ``size`` bytes in all."""
        self.relayed_chunks.inc(chunks)
        self.relayed_bytes.inc(size)

    def served(self, *lengths: int) -> None:
        self.served_chunks.inc(len(lengths))
        self.served_bytes.inc(sum(lengths))

    def deleted(self, chunks: int, freed_bytes: int) -> None:
        self.deleted_chunks.inc(chunks)
        self.deleted_bytes.inc(freed_bytes)

    async def scrape(self) -> CollectorRegistry:
        """Refresh what needs I/O (the volume's free space), then the registry to render."""
        if self.watched is not None and self.watched.store.is_open:
            self.free_bytes.set((await self.watched.store.stats()).free_bytes)
        return self.registry


METRICS = web.AppKey("metrics", NodeMetrics)


async def scrape(request: web.Request) -> CollectorRegistry:
    return await request.app[METRICS].scrape()
