"""Probing: every node's stats and latency, every ProbeConfig.interval_s, all nodes at once."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from cofre.aio import Periodic, within
from cofre.config import ProbeConfig
from cofre.errors import CofreError
from cofre.manager.metrics import ManagerMetrics
from cofre.manager.registry import NodeState, Registry
from cofre.protocol.client import NodeClient

log = logging.getLogger(__name__)


async def probe_node(
    state: NodeState,
    *,
    session: aiohttp.ClientSession,
    token: str,
    config: ProbeConfig,
    metrics: ManagerMetrics | None = None,
) -> bool:
    """Probe one node and fold the result into its state (logging readiness changes); ->
    whether the refill pass should look (see ``NodeState.take_stats``, or readiness changed)."""
    was_ready = state.ready
    client = NodeClient(session, state.url, token)
    started = time.perf_counter()
    attention = False
    try:
        stats = await within(client.stats(), config.timeout_s)
    except (CofreError, TimeoutError, KeyError, TypeError, ValueError) as exc:
        state.failures += 1
        if state.failures >= config.failures_before_unready:
            state.probe_ok = False
        error = exc.detail if isinstance(exc, CofreError) else type(exc).__name__
        log.debug("probe failed node=%s failures=%d error=%s", state.node_id, state.failures, error)
    else:
        sample = time.perf_counter() - started
        if metrics is not None:
            metrics.probed(state.node_id, sample)
        if state.latency_s is None:
            state.latency_s = sample
        else:
            a = config.smoothing
            state.latency_s = a * sample + (1.0 - a) * state.latency_s
        state.failures = 0
        state.probe_ok = True
        attention = state.take_stats(stats, was_ready=was_ready)
        if stats.node_id != state.node_id:
            log.warning("node reports another id node=%s reported=%s", state.node_id, stats.node_id)
    if state.ready != was_ready:
        log.info(
            "node became %s node=%s url=%s",
            "ready" if state.ready else "unready",
            state.node_id,
            state.url,
        )
        state.unready_since = None if state.ready else time.time()
        attention = True
    return attention


async def probe_pass(
    registry: Registry,
    *,
    session: aiohttp.ClientSession,
    token: str,
    config: ProbeConfig,
    metrics: ManagerMetrics | None = None,
) -> None:
    states = [s for s in registry.nodes.values() if s.url]
    attention = await asyncio.gather(
        *(
            probe_node(s, session=session, token=token, config=config, metrics=metrics)
            for s in states
        )
    )
    if any(attention):
        registry.refill_wakeup.set()
    log.debug("probe pass nodes=%d ready=%d", len(states), sum(1 for s in states if s.ready))
    registry.record_usage(time.time())


def probe_loop(
    registry: Registry,
    *,
    session: aiohttp.ClientSession,
    token: str,
    config: ProbeConfig,
    metrics: ManagerMetrics | None = None,
) -> Periodic:
    """A pass at start and every interval; a discovery change triggers an immediate pass."""
    return Periodic(
        "probe",
        lambda: probe_pass(registry, session=session, token=token, config=config, metrics=metrics),
        interval_s=config.interval_s,
        wakeup=registry.changed,
        pass_at_start=True,
    )
