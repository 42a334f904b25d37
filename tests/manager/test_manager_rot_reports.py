"""Rot named as rot: a chunk whose every copy rotted is corrupt (not missing), a corrupt
manifest shows in fsck's text and in where, and an unhealthy repair pass logs a warning."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from cofre.cli.cmd_cluster import fsck_text
from cofre.cli.cmd_where import where_text
from cofre.errors import IntegrityError
from cofre.models import ChunkHash


async def _rot_everywhere(cluster: Any, name: str, chunk: str) -> None:
    """Every copy of ``chunk`` rotten (a byte flipped), then read by its node (which finds it
    corrupt and quarantines it)."""
    for node_id in cluster.nodes:
        if not cluster.holds(node_id, chunk):
            continue
        cluster.rot(node_id, chunk)
        with pytest.raises(IntegrityError):
            await cluster.node(node_id).get_chunk(ChunkHash(chunk))


async def test_a_chunk_rotten_on_every_copy_is_corrupt_after_repair(
    make_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = await make_cluster(3)
    _, manifest, _ = await cluster.send("rot", os.urandom(1000))
    await _rot_everywhere(cluster, "rot", manifest.chunks[0].hash)

    with caplog.at_level(logging.INFO, logger="cofre.manager.repair"):
        report = await cluster.api.repair()
    assert report.unrecoverable == 1 and not report.healthy
    passes = [r for r in caplog.records if r.getMessage().startswith("repair pass ")]
    assert passes and passes[-1].levelno == logging.WARNING

    fsck = await cluster.api.fsck(name="rot")
    assert fsck.files[0].chunks[0].status == "corrupt", fsck
    assert fsck.summary.corrupt == 1 and fsck.summary.missing == 0
    assert (await cluster.api.where("rot")).chunks[0].status == "corrupt"


async def test_a_corrupt_manifest_shows_in_fsck_text_and_where(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    _, manifest, _ = await cluster.send("m", os.urandom(500))
    await _rot_everywhere(cluster, "m", manifest.hash)

    fsck = await cluster.api.fsck(name="m")
    text = fsck_text(fsck)
    assert "manifests: 1 corrupt" in text, text
    assert f"manifest {manifest.hash[:16]} corrupt" in text, text
    where = where_text(await cluster.api.where("m"))
    assert any(
        line.startswith(f"manifest {manifest.hash[:16]}") and line.endswith("corrupt")
        for line in where.splitlines()
    ), where
