"""Repair through the manager app over real storage nodes: lost and rotten copies come back."""

from __future__ import annotations

import os
from typing import Any

from cofre.models import ChunkHash
from cofre.protocol.manager_api import ChunkWhere, CopyWhere, RepairReport

from ..helpers import eventually


def _copies(entry: ChunkWhere) -> dict[str, CopyWhere]:
    return {c.node_id: c for c in entry.copies}


def _repaired(copies: dict[str, CopyWhere]) -> list[CopyWhere]:
    return [c for c in copies.values() if c.why.startswith("repair: ")]


async def test_a_lost_copy_and_a_rotten_copy_are_replaced(make_cluster: Any) -> None:
    cluster = await make_cluster(4)
    _, manifest, _ = await cluster.send("r", os.urandom(2048))
    first, second = (c.hash for c in manifest.chunks)
    where = await cluster.api.where("r")
    lost_on = sorted(_copies(where.chunks[0]))[0]
    rot_on = sorted(_copies(where.chunks[1]))[0]
    await cluster.node(lost_on).delete_chunks([ChunkHash(first)])
    cluster.rot(rot_on, second, at=500)  # same size, other bytes

    # Without verify the rotten copy looks fine (its size is right): only the lost one is seen.
    plain = await cluster.api.repair()
    assert plain.lost_copies == 1 and plain.copies_made == 1
    assert plain.healthy is True
    report = await cluster.api.repair(verify=True)
    assert report == RepairReport(
        chunks=3,
        lost_copies=1,
        under_replicated=1,
        copies_made=1,
        stuck=0,
        unrecoverable=0,
        healthy=True,
    )

    fsck = await cluster.api.fsck(name="r", verify=True)
    assert fsck.healthy is True, fsck
    after = await cluster.api.where("r")
    for entry, gone in ((after.chunks[0], lost_on), (after.chunks[1], rot_on)):
        copies = _copies(entry)
        good = [n for n, c in copies.items() if c.state == "ok"]
        assert len(good) == 2, copies
        repaired = [c for c in copies.values() if c.why.startswith("repair: ")]
        assert len(repaired) == 1
        assert repaired[0].why.startswith(f"repair: copies lost on {gone}; copied from ")
    # Nothing left to do: a second pass copies nothing.
    again = await cluster.api.repair(verify=True)
    assert (again.lost_copies, again.copies_made, again.healthy) == (0, 0, True)


async def test_a_chunk_without_a_good_copy_is_reported_not_invented(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    _, manifest, _ = await cluster.send("gone", os.urandom(1000))
    chunk = manifest.chunks[0].hash
    for node_id in _copies((await cluster.api.where("gone")).chunks[0]):
        await cluster.node(node_id).delete_chunks([ChunkHash(chunk)])

    report = await cluster.api.repair()
    assert report.unrecoverable == 1 and report.healthy is False
    assert report.lost_copies == 2 and report.copies_made == 0
    fsck = await cluster.api.fsck(name="gone")
    assert fsck.healthy is False
    assert fsck.files[0].chunks[0].status == "missing"
    # Its lost copies are forgotten: the catalog no longer claims a node holds it.
    assert (await cluster.api.where("gone")).chunks[0].copies == []


async def test_the_background_pass_replaces_a_lost_copy_by_itself(make_cluster: Any) -> None:
    cluster = await make_cluster(4, repair_interval_s=0.2)
    _, manifest, _ = await cluster.send("bg", os.urandom(1500))
    chunk = manifest.chunks[0].hash
    lost_on = sorted(_copies((await cluster.api.where("bg")).chunks[0]))[0]
    await cluster.node(lost_on).delete_chunks([ChunkHash(chunk)])

    async def copies_now() -> dict[str, CopyWhere]:
        return _copies((await cluster.api.where("bg")).chunks[0])

    # The clock, not a test, starts the pass: that is what this test is about.
    copies = await eventually(
        copies_now,
        until=_repaired,
        what="a background repair pass to replace the lost copy",
    )
    repaired = _repaired(copies)
    # The lost copy was forgotten and a new one made (on whichever node scored best, which may
    # be the one that lost it).
    assert len(copies) == 2 and all(c.state == "ok" for c in copies.values()), copies
    assert repaired[0].why.startswith(f"repair: copies lost on {lost_on}; copied from ")
