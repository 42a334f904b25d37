"""A node's /metrics on real node apps on loopback: each counter moves by exactly what real
traffic did, and /metrics needs the token unless metrics.public opens it."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from cofre.config import MetricsConfig
from cofre.storage_node import relay

from ..metrics_text import Scraped, check_against_doc
from .test_storage_node_relay import call, cluster, send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def scrape(server: TestServer, kit: Any) -> Scraped:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/metrics"), headers=kit.auth) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == CONTENT_TYPE
        return Scraped(await resp.text())


async def status_of(server: TestServer, path: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(path), headers=headers) as r,
    ):
        return r.status


def requests(scraped: Scraped, method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return scraped.value("cofre_node_request_duration_seconds_count", **labels)


async def test_store_read_and_delete_move_the_counters_by_exactly_their_sizes(
    start_node: Any, kit: Any
) -> None:
    server, app = await start_node("node-0")
    first, data = kit.chunk("first", 1000)
    second, more = kit.chunk("second", 2500)
    before = await scrape(server, kit)
    assert before.value("cofre_node_received_chunks_total") == 0
    assert before.value("cofre_node_stored_bytes") == 0
    assert before.value("cofre_node_free_bytes") > 0

    writes = kit.write_headers("node-0")
    for h, blob in ((first, data), (second, more), (first, data)):  # the last one is held
        async with (
            aiohttp.ClientSession() as http,
            http.put(server.make_url(f"/v1/chunks/{h}"), data=blob, headers=writes) as resp,
        ):
            assert resp.status in (200, 201)
    assert (await call("GET", server, f"/v1/chunks/{first}", kit, ticket_nodes=()))[0] == 200
    absent, _ = kit.chunk("never stored")
    status, _ = await call(
        "POST", server, "/v1/chunks/read", kit, ticket_nodes=(), json={"hashes": [second, absent]}
    )
    assert status == 200
    stored = await scrape(server, kit)
    assert stored.value("cofre_node_received_chunks_total") == 2
    assert stored.value("cofre_node_received_bytes_total") == 3500
    assert stored.value("cofre_node_stored_chunks") == 2
    assert stored.value("cofre_node_stored_bytes") == 3500
    assert stored.value("cofre_node_served_chunks_total") == 2
    assert stored.value("cofre_node_served_bytes_total") == 3500
    # By the route's template, never the raw path.
    assert requests(stored, "PUT", "/v1/chunks/{hash}", 201) == 2
    assert requests(stored, "PUT", "/v1/chunks/{hash}", 200) == 1
    assert requests(stored, "GET", "/v1/chunks/{hash}", 200) == 1
    assert not any(
        first in str(labels)
        for labels in stored.series("cofre_node_request_duration_seconds_count")
    )

    status, body = await call(
        "POST", server, "/v1/chunks/delete", kit, ticket_nodes=(), json={"hashes": [first, absent]}
    )
    assert (status, body) == (200, {"deleted": 1, "freed_bytes": 1000})
    await app[relay.SWEEPER].run_once()
    after = await scrape(server, kit)
    assert after.value("cofre_node_deleted_chunks_total") == 1
    assert after.value("cofre_node_deleted_bytes_total") == 1000
    assert after.value("cofre_node_stored_chunks") == 1
    assert after.value("cofre_node_stored_bytes") == 2500
    assert after.value("cofre_node_loop_passes_total", loop="relay-sessions") == 1
    assert after.value("cofre_node_loop_failures_total", loop="relay-sessions") == 0
    # The earlier scrapes are requests too.
    assert requests(after, "GET", "/metrics", 200) == 2
    check_against_doc(after, "Storage node")


async def test_relay_counts_each_replica_copy_and_the_replicas_count_what_they_stored(
    start_node: Any, kit: Any
) -> None:
    primary, r1, r2 = await cluster(start_node, kit)
    h, data = kit.chunk("relay me", 100_000)
    status, _ = await send(primary, kit, h, data)
    assert status == 201
    at_primary = await scrape(primary, kit)
    assert at_primary.value("cofre_node_relayed_chunks_total") == 2
    assert at_primary.value("cofre_node_relayed_bytes_total") == 200_000
    assert at_primary.value("cofre_node_relay_sessions") == 1
    # The primary keeps no copy here.
    assert at_primary.value("cofre_node_received_chunks_total") == 0
    route = "/v1/sessions/{upload_id}/chunks/{hash}"
    assert requests(at_primary, "PUT", route, 201) == 1
    for replica in (r1, r2):
        at_replica = await scrape(replica, kit)
        assert at_replica.value("cofre_node_received_chunks_total") == 1
        assert at_replica.value("cofre_node_received_bytes_total") == 100_000
        assert at_replica.value("cofre_node_relayed_chunks_total") == 0


async def test_metrics_need_the_token_unless_metrics_public(start_node: Any, kit: Any) -> None:
    closed, _ = await start_node("node-0")
    assert await status_of(closed, "/metrics", {}) == 401
    assert await status_of(closed, "/metrics", {"Authorization": "Bearer wrong"}) == 401
    assert await status_of(closed, "/metrics", kit.auth) == 200
    # The refusals are answers too, on the template of the route they asked for.
    scraped = await scrape(closed, kit)
    assert requests(scraped, "GET", "/metrics", 401) == 2
    assert await status_of(closed, "/no/such/path", kit.auth) == 404
    assert requests(await scrape(closed, kit), "GET", "unmatched", 404) == 1

    public, _ = await start_node("node-1", metrics=MetricsConfig(public=True))
    assert await status_of(public, "/metrics", {}) == 200
    # Only /metrics opens: everything else still needs the token.
    assert await status_of(public, "/v1/stats", {}) == 401
    assert await status_of(public, "/v1/stats", kit.auth) == 200
