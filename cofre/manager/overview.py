"""The status page's overview: cluster totals, the capacity forecast, placement's weights and
the latest fsck and repair, in one answer."""

from __future__ import annotations

import time

from cofre.manager.capacity import forecast
from cofre.manager.context import Manager
from cofre.manager.health import cluster_stats
from cofre.protocol.manager_api import ClusterOverview


async def overview(m: Manager) -> ClusterOverview:
    stats = await cluster_stats(m)
    p = m.config.placement
    return ClusterOverview(
        stats=stats,
        capacity=forecast(
            m.registry.usage.samples(),
            used_bytes=stats.used_bytes,
            capacity_bytes=stats.capacity_bytes,
            now=time.time(),
        ),
        latency_weight=p.latency_weight,
        stored_bytes_weight=p.stored_bytes_weight,
        replication_factor=p.replication_factor,
        primary_keeps_copy=p.primary_keeps_copy,
        last_fsck=m.last_fsck,
        last_repair=m.last_repair,
    )
