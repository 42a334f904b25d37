"""Prometheus pieces every service shares: the text format, request latency by route, and the
passes of the background loops.

Each app owns a ``CollectorRegistry`` (never the process-wide default one), so tests run several
apps in one process and every app's ``/metrics`` shows only its own series.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

import prometheus_client
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from cofre.aio import Periodic

# The Prometheus text format, version 0.0.4: what every scraper reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"
# Seconds: from a loopback health probe (about a millisecond) to a 64 MiB chunk relayed to
# its replicas over a slow disk (tens of seconds).
REQUEST_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
# The route label of a request that matched no route (404, 405): one series, not one per path.
UNMATCHED = "unmatched"

# A counter's ``_created`` series (its creation time, one per label set) doubles the series
# count and nobody here reads it; the switch is process-wide in prometheus_client.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def render(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the text format (CONTENT_TYPE)."""
    return prometheus_client.generate_latest(registry)


def request_histogram(prefix: str, registry: CollectorRegistry) -> Histogram:
    return Histogram(
        f"{prefix}_request_duration_seconds",
        "Time from a request's arrival to its answer, by method, route (the path template) "
        "and status.",
        ["method", "route", "status"],
        buckets=REQUEST_BUCKETS,
        registry=registry,
    )


def route_of(request: web.Request) -> str:
    """The route's path template (``/v1/chunks/{hash}``), never the raw path: the label stays
    bounded whatever paths clients send."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def request_middleware(histogram: Histogram) -> Middleware:
    """Time every request, outermost, so the status is the one the client gets (problems and
    401s included). A request cancelled because its client left is not counted."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()

        def observe(status: int) -> None:
            histogram.labels(request.method, route_of(request), str(status)).observe(
                time.perf_counter() - started
            )

        # A cancel (client gone, shutdown) is a BaseException: not an answer, not counted.
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            observe(exc.status)
            raise
        except Exception:
            observe(500)
            raise
        observe(response.status)
        return response

    return middleware


class LoopCollector(Collector):
    """Passes and failed passes of a service's background loops, read from each ``Periodic``'s
    own counters at scrape time."""

    def __init__(self, prefix: str, loops: Callable[[], Iterable[Periodic]]) -> None:
        self._prefix = prefix
        self._loops = loops

    def collect(self) -> Iterator[Metric]:
        passes = CounterMetricFamily(
            f"{self._prefix}_loop_passes",
            "Passes of a background loop that finished.",
            labels=["loop"],
        )
        failures = CounterMetricFamily(
            f"{self._prefix}_loop_failures",
            "Passes of a background loop that raised (logged with the loop's name).",
            labels=["loop"],
        )
        for loop in self._loops():
            passes.add_metric([loop.name], loop.passes)
            failures.add_metric([loop.name], loop.failures)
        yield passes
        yield failures
