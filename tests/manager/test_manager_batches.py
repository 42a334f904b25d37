"""Uploads of several files: one session, one framed relay, one commit of every version."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from cofre.chunks import hash_bytes
from cofre.errors import BadRequest, Conflict, IncompleteUpload, ReplicaFailed
from cofre.models import ChunkRef, Manifest, UploadId
from cofre.protocol.client import NodeClient
from cofre.protocol.framing import encode_frames
from cofre.protocol.manager_api import FileDecl, UploadCreated

from .conftest import TOKEN


def manifest_of(
    name: str, data: bytes, chunk_size: int
) -> tuple[Manifest, list[tuple[Any, bytes]]]:
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    refs = [ChunkRef(hash_bytes(p), len(p)) for p in pieces]
    manifest = Manifest(
        name=name, size=len(data), mode=0o600, mtime=2.5, created=time.time(), chunks=tuple(refs)
    )
    return manifest, [(r.hash, p) for r, p in zip(refs, pieces, strict=True)]


async def open_batch(cluster: Any, files: dict[str, bytes]) -> tuple[UploadCreated, NodeClient]:
    up = await cluster.api.create_batch_upload(
        [FileDecl(name=n, size=len(d), mode=0o600, mtime=2.5) for n, d in files.items()]
    )
    return up, NodeClient(cluster.http, up.primary_url, TOKEN)


async def send_batch(cluster: Any, files: dict[str, bytes]) -> tuple[UploadCreated, list[Manifest]]:
    up, primary = await open_batch(cluster, files)
    uid = UploadId(up.upload_id)
    frames: dict[Any, bytes] = {}
    manifests = []
    for name, data in files.items():
        manifest, pieces = manifest_of(name, data, up.chunk_size)
        manifests.append(manifest)
        frames.update(pieces)
        frames[manifest.hash] = manifest.encode()
    missing = await primary.missing(uid, list(frames), ticket=up.ticket)
    if missing:
        framed = encode_frames([(h, frames[h]) for h in missing])
        await primary.upload_chunks(uid, framed, ticket=up.ticket)
    return up, manifests


async def test_batch_commits_every_version_with_its_copies(make_cluster: Any) -> None:
    cluster = await make_cluster(3, factor=2)
    files = {f"dir/f{i}": f"content {i}".encode() * (i + 1) for i in range(40)}
    files["dir/same-a"] = files["dir/same-b"] = b"shared bytes" * 50  # dedup within a batch
    files["dir/empty"] = b""
    files["dir/multi"] = bytes(range(256)) * 10  # several chunks at CHUNK_SIZE 1024
    up, manifests = await send_batch(cluster, files)
    versions = await cluster.api.commit_batch(UploadId(up.upload_id), manifests)
    assert [v.name for v in versions] == list(files)
    assert all(v.version == 1 for v in versions)
    listed = {f.name: f for f in await cluster.api.list_files()}
    assert set(listed) == set(files)
    for name, data in files.items():
        got = await cluster.api.get_manifest(name)
        assert got.size == len(data)
        for chunk in got.chunks:
            # Two copies (F=2), none on the primary.
            assert len(chunk.nodes) == 2
            assert up.primary_url.rstrip("/") not in chunk.nodes
        blob = b"".join(
            [
                await NodeClient(cluster.http, c.nodes[0], TOKEN).get_chunk(c.hash)
                for c in got.chunks
            ]
        )
        assert blob == data
    # A retried commit answers the same versions and records nothing new.
    again = await cluster.api.commit_batch(UploadId(up.upload_id), manifests)
    assert again == versions
    assert len(await cluster.api.list_files(versions=True)) == len(files)


async def test_batch_may_commit_a_subset_and_names_are_checked(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    files = {"a": b"alpha", "b": b"beta", "c": b"gamma"}
    up, manifests = await send_batch(cluster, files)
    uid = UploadId(up.upload_id)
    stranger, _ = manifest_of("zzz", b"alpha", 1024)
    with pytest.raises(BadRequest):
        await cluster.api.commit_batch(uid, [manifests[0], stranger])
    wrong_size, _ = manifest_of("a", b"alphaXX", 1024)
    with pytest.raises(BadRequest):
        await cluster.api.commit_batch(uid, [wrong_size])
    with pytest.raises(BadRequest):
        await cluster.api.commit_batch(uid, [manifests[0], manifests[0]])
    versions = await cluster.api.commit_batch(uid, [manifests[0], manifests[2]])
    assert [v.name for v in versions] == ["a", "c"]
    assert {f.name for f in await cluster.api.list_files()} == {"a", "c"}
    with pytest.raises(Conflict):
        await cluster.api.commit_batch(uid, [manifests[1]])


async def test_batch_with_a_chunk_missing_commits_nothing(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    files = {"x": b"x" * 100, "y": b"y" * 100}
    up, primary = await open_batch(cluster, files)
    uid = UploadId(up.upload_id)
    mx, px = manifest_of("x", files["x"], 1024)
    my, _ = manifest_of("y", files["y"], 1024)
    # y's data chunk is never sent.
    framed = encode_frames([*px, (mx.hash, mx.encode()), (my.hash, my.encode())])
    await primary.upload_chunks(uid, framed, ticket=up.ticket)
    with pytest.raises(IncompleteUpload):
        await cluster.api.commit_batch(uid, [mx, my])
    assert await cluster.api.list_files() == []


async def test_batch_with_a_replica_down_fails_cleanly(make_cluster: Any) -> None:
    cluster = await make_cluster(3, factor=2)
    files = {"p": b"p" * 10, "q": b"q" * 10}
    up, primary = await open_batch(cluster, files)
    uid = UploadId(up.upload_id)
    replica = next(n for n in cluster.nodes if cluster.url(n) != up.primary_url.rstrip("/"))
    await cluster.nodes[replica].close()
    mp, pp = manifest_of("p", files["p"], 1024)
    mq, pq = manifest_of("q", files["q"], 1024)
    framed = encode_frames([*pp, *pq, (mp.hash, mp.encode()), (mq.hash, mq.encode())])
    with pytest.raises(ReplicaFailed) as failed:
        await primary.upload_chunks(uid, framed, ticket=up.ticket)
    assert replica not in str(failed.value.detail)
    with pytest.raises(Exception):  # noqa: B017 - the replica cannot even be asked
        await cluster.api.commit_batch(uid, [mp, mq])
    assert await cluster.api.list_files() == []


async def test_batch_declarations_are_validated(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    # Sent raw: the typed client cannot even build these declarations. The field is named
    # (pydantic may add the union's tag, "batch", after "body").
    for files, field, why in (
        ([], r"\.files", "at least 1 item"),
        ([{"name": "a", "size": 1}, {"name": "a", "size": 2}], "", "each name may appear once"),
        ([{"name": "", "size": 1}], r"\.files\.0\.name", "at least 1 character"),
        ([{"name": "a", "size": -1}], r"\.files\.0\.size", "greater than or equal to 0"),
        ([{"name": "a", "size": 1, "mtime": "soon"}], r"\.files\.0\.mtime", "valid number"),
        (["not an object"], r"\.files\.0", "object"),
    ):
        detail = await cluster.refused("POST", "/v1/uploads", json={"files": files})
        loc, _, message = detail.partition(": ")
        assert re.fullmatch(r"body(\.batch)?" + field, loc) and why in message, detail
    assert await cluster.api.list_files() == []
    listed = await cluster.api.nodes()
    assert sum(n.in_flight_bytes for n in listed.nodes) == 0  # nothing was placed
    with pytest.raises(BadRequest, match=r"^files: "):
        await cluster.api.create_batch_upload([])


async def test_manifests_batch_answers_the_latest_of_each_name(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    await cluster.send("one", b"first")
    await cluster.send("one", b"second")
    await cluster.send("two", b"other" * 500)
    got = await cluster.api.get_manifests(["two", "absent", "one"])
    assert [(m.name, m.version) for m in got] == [("two", 1), ("one", 2)]
    for m in got:
        single = await cluster.api.get_manifest(m.name)
        # Each answer signs its own read ticket (its expiry is the time of the answer).
        assert m.ticket and single.ticket
        assert m.model_copy(update={"ticket": None}) == single.model_copy(update={"ticket": None})
    detail = await cluster.refused("POST", "/v1/files/manifests", json={"names": ["x"] * 1001})
    assert detail.startswith("body.names: ") and "at most 1000" in detail, detail
