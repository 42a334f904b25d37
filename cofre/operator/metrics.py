"""The operator's Prometheus metrics (docs/metrics.md lists them), served by a small aiohttp app
of its own on ``metrics_port`` (kopf's liveness endpoint has its own port).

The operator holds no cluster token (each BackupCluster has its own), so its /metrics is open:
it tells how passes go, nothing about any cluster's data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import kopf
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from cofre.protocol.metrics import CONTENT_TYPE, METRICS_PATH, render

log = logging.getLogger(__name__)

PREFIX = "cofre_operator"
RESULTS = ("ok", "temporary_error", "permanent_error")
# Seconds: a pass is a handful of Kubernetes requests and two to the manager; the HTTP timeouts
# are 10 s (manager) and 60 s (Kubernetes).
PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def result_of(exc: BaseException | None) -> str:
    """How kopf takes a pass's outcome: a PermanentError is not retried, anything else that
    raised is retried."""
    if exc is None:
        return "ok"
    return "permanent_error" if isinstance(exc, kopf.PermanentError) else "temporary_error"


class OperatorMetrics:
    """The operator's registry and its counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(
            f"{PREFIX}_reconcile_passes_total",
            "Full reconcile passes of a BackupCluster, by result (ok, temporary_error: kopf "
            "retries it, permanent_error: an invalid spec).",
            ["result"],
            registry=r,
        )
        self.duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time a full reconcile pass took, its lock wait included.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.refreshes = Counter(
            f"{PREFIX}_status_refreshes_total",
            "Status refreshes after a change of a cluster's StatefulSets or pods, by result "
            "(ok or temporary_error).",
            ["result"],
            registry=r,
        )
        for result in RESULTS:
            self.passes.labels(result)
        for result in RESULTS[:2]:
            self.refreshes.labels(result)

    @contextmanager
    def reconcile_pass(self) -> Iterator[None]:
        """Time a full pass and count it by how it ended (the error goes on to kopf)."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.passes.labels(result_of(exc)).inc()
            raise
        else:
            self.passes.labels("ok").inc()
        finally:
            self.duration.observe(time.perf_counter() - started)

    @contextmanager
    def status_refresh(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.refreshes.labels(result_of(exc)).inc()
            raise
        else:
            self.refreshes.labels("ok").inc()


METRICS = web.AppKey("metrics", OperatorMetrics)


async def _metrics(request: web.Request) -> web.Response:
    body = render(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def metrics_app(metrics: OperatorMetrics) -> web.Application:
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get(METRICS_PATH, _metrics)
    return app


async def serve(metrics: OperatorMetrics, *, host: str, port: int) -> web.AppRunner:
    """Serve ``GET /metrics`` on ``host:port`` until the runner is cleaned up."""
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("metrics served address=%s:%d path=%s", host, port, METRICS_PATH)
    return runner
