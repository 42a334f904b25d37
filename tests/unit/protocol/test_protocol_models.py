"""The wire models refuse bad input as a class, not case by case.

Every request model of both services has a valid example here (a test fails if one is added
without one), and every field of every example is then replaced by each hostile value of its
kind: a NaN or infinite number, an integer past 64 bits, a lone surrogate or NUL in text, a wrong
JSON type, an unknown field, nesting far past any real body. Each must be refused with a
ValidationError naming the field, never accepted and never another exception.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, ValidationError

from cofre import limits
from cofre.errors import BadRequest
from cofre.models import ChunkHash, UploadId
from cofre.protocol import manager_api, node_api
from cofre.protocol.base import Request
from cofre.protocol.client import ManagerClient, NodeClient

H = "a" * 64
MANIFEST = {
    "format": "cofre-manifest-1",
    "name": "docs/report.pdf",
    "size": 5,
    "mode": 0o100644,
    "mtime": 1.5,
    "created": 2.0,
    "chunks": [[H, 5]],
}
ENTRY = {
    "path": "home/ana/notes.txt",
    "kind": "file",
    "mode": 0o100644,
    "mtime_ns": 1_700_000_000_000_000_000,
    "size": 5,
    "uid": 1000,
    "gid": 1000,
    "chunks": [[H, 5]],
    "ctime_ns": 1_700_000_000_000_000_001,
    "inode": 42,
    "device": 2049,
}
SNAP = "0123456789abcdef0123456789abcdef"
EXAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    manager_api.ManifestDoc: MANIFEST,
    manager_api.FileDecl: {"name": "a", "size": 3, "mode": 420, "mtime": 1.25},
    manager_api.BatchDecl: {"files": [{"name": "a", "size": 3}, {"name": "b", "size": 0}]},
    manager_api.CommitOne: {"manifest": MANIFEST},
    manager_api.CommitBatch: {"manifests": [MANIFEST]},
    manager_api.KnownQuery: {"hashes": [H]},
    manager_api.ManifestsQuery: {"names": ["a", "b/c"]},
    manager_api.GcRequest: {"grace_s": 30.0},
    manager_api.RepairRequest: {"verify": True},
    manager_api.RebuildRequest: {},
    manager_api.DrainRequest: {"nodes": ["node-1"]},
    manager_api.TreeEntry: ENTRY,
    manager_api.SnapshotCreate: {
        "time": 1.7e9,
        "host": "laptop",
        "tags": ["daily"],
        "paths": ["/home/ana"],
        "parent": SNAP,
    },
    manager_api.SnapshotChunks: {"upload_id": "u-1", "chunks": [[H, 5]]},
    manager_api.SnapshotEntries: {"entries": [ENTRY]},
    manager_api.SnapshotCommit: {"entries": 1},
    manager_api.LocateQuery: {"hashes": [H]},
    manager_api.ForgetRequest: {
        "keep_last": 3,
        "keep_hourly": 1,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 12,
        "keep_yearly": -1,
        "keep_within": 86400.0,
        "keep_tags": ["keep"],
        "host": "laptop",
        "tags": ["daily"],
        "paths": ["/home/ana"],
        "group_by": ["host", "paths"],
        "timezone": "Europe/Madrid",
        "dry_run": True,
    },
    manager_api.CreateKey: {"name": "laptop-ana", "role": "backup"},
    node_api.HashList: {"hashes": [H]},
    node_api.ReadRequest: {"hashes": [H]},
    node_api.CheckRequest: {"hashes": [H], "lengths": [5], "verify": False, "touch": True},
    node_api.SizedHashes: {"hashes": [H], "lengths": [5]},
    node_api.MissingRequest: {"hashes": [H], "lengths": [5]},
    node_api.PullRequest: {"hash": H, "sources": ["http://10.0.0.1:8081"]},
    node_api.Replica: {"node_id": "node-2", "url": "http://n2:8081"},
    node_api.OpenSession: {
        "upload_id": "u-1",
        "replicas": [{"node_id": "node-2", "url": "http://n2:8081"}],
        "replica_ticket": "t.s",
        "keep_copy": False,
        "expires": 1000.0,
    },
}


def _request_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for module in (manager_api, node_api):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Request) and value is not Request:
                found.add(value)
    return found


def test_every_request_model_has_a_valid_example() -> None:
    assert _request_models() == set(EXAMPLES)
    for model, example in EXAMPLES.items():
        model.model_validate_json(json.dumps(example))


def _hostile(value: object) -> list[object]:
    """Values of the wrong kind or past the limits for a field whose valid value is ``value``."""
    common: list[object] = [None, {"nested": 1}]
    if isinstance(value, bool):
        return [*common, 1, "true", "yes"]
    if isinstance(value, int):
        return [*common, 2**64, -(2**64), "1", 1.5, True, float("nan")]
    if isinstance(value, float):
        return [*common, float("nan"), float("inf"), float("-inf"), "1.0", 1e400]
    if isinstance(value, str):
        return [*common, value + "\ud800", value + "\x00", 7, ["x"], "x" * 70_000]
    if isinstance(value, list):
        return [*common, "x", [None], [float("nan")]]
    if isinstance(value, dict):
        return [*common, "x", []]
    raise AssertionError(f"no hostile values for {value!r}")


def _cases() -> list[tuple[type[BaseModel], str, object]]:
    cases = []
    for model, example in EXAMPLES.items():
        for field, value in example.items():
            nullable = model.model_fields[field].default is None
            for bad in _hostile(value):
                if not (bad is None and nullable):
                    cases.append((model, field, bad))
    return cases


def _encode(doc: dict[str, Any]) -> bytes:
    # Python's encoder writes NaN and Infinity literals, and lone surrogates as \\ud800 escapes,
    # as a hostile client may.
    return json.dumps(doc, allow_nan=True).encode()


@pytest.mark.parametrize(
    ("model", "field", "bad"),
    _cases(),
    ids=lambda v: v.__name__ if isinstance(v, type) else repr(v)[:20],
)
def test_each_field_refuses_hostile_values(model: type[BaseModel], field: str, bad: object) -> None:
    doc = {**EXAMPLES[model], field: bad}
    try:
        parsed = model.model_validate_json(_encode(doc))
    except ValidationError as exc:
        text = str(exc)
        assert field in text or "Invalid JSON" in text, text
        return
    pytest.fail(f"{model.__name__}.{field}={bad!r:.40} was accepted as {parsed!r:.200}")


@pytest.mark.parametrize("model", sorted(EXAMPLES, key=lambda m: m.__name__), ids=str)
def test_unknown_fields_deep_nesting_and_non_objects_are_refused(model: type[BaseModel]) -> None:
    for raw in (
        _encode({**EXAMPLES[model], "unexpected": 1}),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[]",
        b"7",
        b"",
        b"\xff\xfe",
    ):
        with pytest.raises(ValidationError):
            model.model_validate_json(raw)


def test_query_parameters_are_bounded_too() -> None:
    ok = manager_api.NameQuery.model_validate({"name": "a", "version": "3"})
    assert ok.version == 3
    for bad in (
        {"name": "a", "version": str(2**64)},
        {"name": "a", "version": "0"},
        {"name": "a", "version": "nan"},
        {"name": "a\x00b"},
        {"name": "a\udcff"},
        {"name": ""},
        {},
    ):
        with pytest.raises(ValidationError):
            manager_api.NameQuery.model_validate(bad)
    for bad_before in ("nan", "inf", "soon"):
        with pytest.raises(ValidationError):
            node_api.InventoryQuery.model_validate({"before": bad_before})


def test_limits_are_the_models_limits() -> None:
    too_many = {"hashes": [H] * (limits.MAX_KNOWN_HASHES + 1)}
    with pytest.raises(ValidationError, match="at most 4096"):
        manager_api.KnownQuery.model_validate(too_many)
    name = "é" * (limits.MAX_NAME_BYTES // 2 + 1)  # fewer characters than bytes
    with pytest.raises(ValidationError, match="bytes of UTF-8"):
        manager_api.FileDecl.model_validate({"name": name, "size": 1})
    schema = manager_api.KnownQuery.model_json_schema()
    assert schema["properties"]["hashes"]["maxItems"] == limits.MAX_KNOWN_HASHES


def test_manifest_round_trip_and_consistency() -> None:
    doc = manager_api.ManifestDoc.model_validate_json(json.dumps(MANIFEST))
    manifest = doc.to_manifest()
    assert manager_api.decode_manifest(manifest.encode()) == manifest
    assert manager_api.ManifestDoc.of(manifest) == doc
    with pytest.raises(ValidationError, match="add up"):
        manager_api.ManifestDoc.model_validate_json(json.dumps({**MANIFEST, "size": 6}))


def test_a_batch_declares_each_name_once() -> None:
    with pytest.raises(ValidationError, match="once per upload"):
        manager_api.BatchDecl.model_validate({"files": [{"name": "a", "size": 1}] * 2})
    one = manager_api.CreateUpload.model_validate_json(b'{"name": "a", "size": 1}')
    batch = manager_api.CreateUpload.model_validate_json(b'{"files": [{"name": "a", "size": 1}]}')
    assert not one.batch and batch.batch and one.files == batch.files


def test_a_session_needs_somewhere_to_store() -> None:
    example = EXAMPLES[node_api.OpenSession]
    with pytest.raises(ValidationError, match="at least one replica"):
        node_api.OpenSession.model_validate({**example, "replicas": []})
    kept = node_api.OpenSession.model_validate({**example, "replicas": [], "keep_copy": True})
    assert kept.keep_copy
    url = node_api.Replica.model_validate({"node_id": "n", "url": "http://n:1/"}).url
    assert url == "http://n:1"


async def test_the_clients_refuse_bad_input_before_sending_anything() -> None:
    # The base URL is never contacted: each call fails while building its request body.
    async with aiohttp.ClientSession() as session:
        manager = ManagerClient(session, "http://127.0.0.1:9", "token")
        node = NodeClient(session, "http://127.0.0.1:9", "token")
        with pytest.raises(BadRequest, match=r"^hashes\.0: "):
            await manager.known(UploadId("u"), [ChunkHash("../etc/passwd")])
        with pytest.raises(BadRequest, match=r"^files: "):
            await manager.create_batch_upload([])
        with pytest.raises(BadRequest, match=r"^names: .*at most 1000"):
            await manager.get_manifests(["x"] * 1001)
        with pytest.raises(BadRequest, match="NUL"):
            await manager.create_upload(name="a\x00b", size=1, mode=0o644, mtime=0.0)
        with pytest.raises(BadRequest, match=r"^sources: "):
            await node.pull_chunk(ChunkHash(H), [], ticket="t.s")
