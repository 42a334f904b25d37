"""The operator's metrics: passes through the real handlers (over the fake API server and a fake
manager on loopback) counted by result, and /metrics served by its own small server."""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf
import pytest

from cofre.kube import KubeError
from cofre.operator import handlers
from cofre.operator.metrics import OperatorMetrics, result_of, serve
from cofre.protocol.metrics import render

from ...metrics_text import Scraped, check_against_doc
from .test_operator_reconcile import (  # noqa: F401  (fixtures)
    BC_PATH,
    World,
    _pod,
    events,
    world,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_of(w: World) -> OperatorMetrics:
    got = w.memo["metrics"]
    assert isinstance(got, OperatorMetrics)
    return got


def scraped(metrics: OperatorMetrics) -> Scraped:
    return Scraped(render(metrics.registry).decode())


def test_results_are_what_kopf_makes_of_them() -> None:
    assert result_of(None) == "ok"
    assert result_of(kopf.PermanentError("bad spec")) == "permanent_error"
    assert result_of(kopf.TemporaryError("later")) == "temporary_error"
    assert result_of(RuntimeError("bug")) == "temporary_error"


async def test_passes_are_counted_by_result_and_timed(world: World) -> None:  # noqa: F811
    await world.full_pass()
    await world.full_pass()
    seen = scraped(metrics_of(world))
    passes = "cofre_operator_reconcile_passes_total"
    assert seen.value(passes, result="ok") == 2
    assert seen.value(passes, result="temporary_error") == 0
    assert seen.value("cofre_operator_reconcile_duration_seconds_count") == 2
    assert seen.value("cofre_operator_reconcile_duration_seconds_sum") > 0

    async def refuse(_: Any) -> Any:
        raise KubeError("the API server is away", status=503, reason="ServiceUnavailable")

    world.kube.apply = refuse  # type: ignore[method-assign]
    world.kube.objects[BC_PATH]["spec"]["storageNodes"] = 4  # something to apply
    with pytest.raises(Exception) as raised:
        await world.full_pass()
    assert not isinstance(raised.value, kopf.PermanentError)
    world.kube.objects[BC_PATH]["spec"] = {"storageNodes": "many"}
    with pytest.raises(kopf.PermanentError):
        await world.full_pass()
    seen = scraped(metrics_of(world))
    assert seen.value(passes, result="ok") == 2
    assert seen.value(passes, result="temporary_error") == 1
    assert seen.value(passes, result="permanent_error") == 1
    assert seen.value("cofre_operator_reconcile_duration_seconds_count") == 4
    check_against_doc(seen, "Operator")


async def test_status_refreshes_are_counted(world: World) -> None:  # noqa: F811
    await world.full_pass()
    await handlers.pod_event(body=_pod("demo-storage-1", "storage-node"), memo=world.memo)
    await handlers.pod_event(body=_pod("demo-storage-2", "storage-node"), memo=world.memo)
    seen = scraped(metrics_of(world))
    assert seen.value("cofre_operator_status_refreshes_total", result="ok") == 2
    # A pod that feeds no cluster's status refreshes nothing.
    await handlers.pod_event(body=_pod("demo-toolbox-0", "toolbox"), memo=world.memo)
    seen = scraped(metrics_of(world))
    assert seen.value("cofre_operator_status_refreshes_total", result="ok") == 2


async def test_metrics_are_served_on_their_own_port() -> None:
    metrics = OperatorMetrics()
    metrics.passes.labels("ok").inc(3)
    runner = await serve(metrics, host="127.0.0.1", port=0)
    try:
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://{host}:{port}/metrics") as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            seen = Scraped(await resp.text())
    finally:
        await runner.cleanup()
    assert seen.value("cofre_operator_reconcile_passes_total", result="ok") == 3
    check_against_doc(seen, "Operator")
