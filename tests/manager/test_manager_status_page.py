"""The status page's files and the overview they read, over a real manager and storage nodes:
the page is public and holds no data; the data needs the token."""

from __future__ import annotations

import os

import pytest

from cofre.manager.keys import MANAGER
from cofre.manager.statuspage import PAGE_FILES, read_file

from .conftest import TOKEN, ClusterFactory


@pytest.mark.parametrize("path", sorted(PAGE_FILES))
async def test_the_page_files_are_served_without_the_token(
    make_cluster: ClusterFactory, path: str
) -> None:
    cluster = await make_cluster(2, factor=2)
    resp = await cluster.manager.get(path)
    assert resp.status == 200
    name, content_type, _ = PAGE_FILES[path]
    assert resp.content_type == content_type
    assert await resp.read() == read_file(name)
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_only_declared_public_paths_skip_the_token(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(2, factor=2)
    for path in ("/v1/overview", "/v1/nodes", "/ui/other.js", "/ui/", "/index.html"):
        resp = await cluster.manager.get(path)
        assert resp.status == 401, path
    resp = await cluster.manager.get("/ui/other.js", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 404
    page = read_file("index.html").decode() + read_file("status.js").decode()
    # Nothing the page refers to lives elsewhere, and it only ever reads.
    assert "http://" not in page and "https://" not in page and "//" + "cdn" not in page
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert f'method: "{method}"' not in page


async def test_overview_has_totals_forecast_and_the_latest_fsck_and_repair(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(3, factor=2)
    m = cluster.manager.server.app[MANAGER]
    m.registry.usage.sample_every_s = 0.0  # every probe pass keeps a sample
    before = await cluster.api.overview()
    assert before.last_fsck is None and before.last_repair is None
    assert (before.latency_weight, before.stored_bytes_weight) == (0.5, 0.5)
    assert (before.replication_factor, before.primary_keeps_copy) == (2, False)
    assert before.stats.nodes_ready == 3
    assert before.capacity.capacity_bytes == before.stats.capacity_bytes > 0

    await cluster.probe(passes=2)
    flat = (await cluster.api.overview()).capacity
    assert flat.samples >= 2 and flat.growth_bytes_per_s == 0.0 and flat.full_at is None

    await cluster.send("a", os.urandom(5000))
    await cluster.probe()
    grown = await cluster.api.overview()
    assert grown.capacity.used_bytes == grown.stats.used_bytes > 0
    assert grown.capacity.growth_bytes_per_s is not None and grown.capacity.growth_bytes_per_s > 0
    assert grown.capacity.full_at is not None

    # Only a whole-catalog fsck is the latest fsck.
    await cluster.api.fsck(name="a")
    assert (await cluster.api.overview()).last_fsck is None
    report = await cluster.api.fsck(verify=True)
    fsck = (await cluster.api.overview()).last_fsck
    assert fsck is not None and fsck.verify is True and fsck.healthy is True
    assert fsck.summary == report.summary and fsck.summary.ok == fsck.summary.chunks > 0

    repaired = await cluster.api.repair()
    last = (await cluster.api.overview()).last_repair
    assert last is not None and last.report == repaired and last.verify is False
    assert last.at >= fsck.at


async def test_each_score_is_the_weighted_sum_of_its_terms(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(3, factor=2)
    await cluster.send("a", os.urandom(3000))
    await cluster.probe()
    nodes = (await cluster.api.nodes()).nodes
    for n in nodes:
        assert n.score is not None and n.latency_term is not None and n.stored_term is not None
        assert 0 < n.latency_term <= 1 and 0 <= n.stored_term <= 1
        assert n.score == pytest.approx(0.5 * n.latency_term + 0.5 * n.stored_term)
    assert max(n.latency_term or 0 for n in nodes) == 1.0
    assert max(n.stored_term or 0 for n in nodes) == 1.0
