"""Placement over many uploads: stored bytes stay balanced and the primary role rotates."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

UPLOADS = 200
CLIENTS = 4


async def test_two_hundred_uploads_from_several_clients_balance_the_nodes(
    make_cluster: Any,
) -> None:
    # The default: the primary relays and keeps no copy (the case the seed's rule starved).
    cluster = await make_cluster(4, factor=2)
    primaries: Counter[str] = Counter()
    rng = random.Random(7)
    # Uneven sizes, one chunk each (the fixture's chunks are 1 KiB) to keep the test quick.
    sizes = [rng.randrange(50, 1_000) for _ in range(UPLOADS)]

    async def client(index: int) -> None:
        for n in range(index, UPLOADS, CLIENTS):
            up, _, committed = await cluster.send(f"c{index}/f{n}", rng.randbytes(sizes[n]))
            assert committed is not None
            primaries[cluster.node_id_of(up.primary_url)] += 1
            if n % 10 == 0:
                # The manager probes every few seconds while clients upload, so several
                # uploads land between two probes.
                await cluster.probe()

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    await cluster.probe()

    stored = {n.node_id: n.stored_bytes for n in (await cluster.api.nodes()).nodes}
    assert len(stored) == 4
    assert min(stored.values()) > 0, stored
    assert max(stored.values()) / min(stored.values()) <= 1.5, stored
    assert sum(primaries.values()) == UPLOADS
    assert set(primaries) == set(stored), primaries
    assert max(primaries.values()) <= UPLOADS / 2, primaries
