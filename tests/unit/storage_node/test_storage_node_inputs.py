"""Pure parsing of what requests carry, and the relay's session registry."""

from __future__ import annotations

import pytest

from cofre.errors import BadRequest, NotFound
from cofre.models import UploadId
from cofre.storage_node.inputs import (
    MAX_HASHES,
    parse_before,
    parse_hash_list,
    parse_sources,
    parse_upload_id,
    parse_url,
)
from cofre.storage_node.relay_sessions import RelaySession, SessionRegistry

H = "a" * 64


def session_json(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "upload_id": "u-1",
        "replicas": [{"node_id": "node-1", "url": "http://10.0.0.1:8081/"}],
        "replica_ticket": "t.s",
        "keep_copy": False,
        "expires": 1000.0,
    }
    body.update(over)
    return body


def test_hash_list_accepts_hashes_and_bounds_the_length() -> None:
    assert parse_hash_list([H, "b" * 64]) == [H, "b" * 64]
    with pytest.raises(BadRequest):
        parse_hash_list([H] * (MAX_HASHES + 1))
    for bad in ("not a list", [H.upper()], [1], ["../etc"], None):
        with pytest.raises(BadRequest):
            parse_hash_list(bad)


def test_upload_ids_are_url_safe_tokens() -> None:
    assert parse_upload_id("Ab_9-x.y~") == "Ab_9-x.y~"
    for bad in ("", "a/b", "..%2F", "x" * 201, 7, "a b"):
        with pytest.raises(BadRequest):
            parse_upload_id(bad)


def test_urls_and_sources() -> None:
    assert parse_url("http://n:1/", what="u") == "http://n:1"
    for bad in ("file:///etc/passwd", "ftp://x", "http://a b", 3, "http://" + "x" * 3000):
        with pytest.raises(BadRequest):
            parse_url(bad, what="u")
    with pytest.raises(BadRequest):
        parse_sources([])
    with pytest.raises(BadRequest):
        parse_sources(["http://x"] * 33)


def test_before_is_a_finite_number_or_absent() -> None:
    assert parse_before(None) is None and parse_before("") is None
    assert parse_before("12.5") == 12.5
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(BadRequest):
            parse_before(bad)


def test_session_from_json() -> None:
    s = RelaySession.from_json(session_json())
    assert s.upload_id == "u-1" and s.replicas[0].url == "http://10.0.0.1:8081"
    assert not s.keep_copy and s.expires == 1000.0
    bad_cases = [
        {"replicas": "x"},
        {"replicas": [{"node_id": "../x", "url": "http://a"}]},
        {"replicas": [], "keep_copy": False},
        {"replicas": [{"node_id": "n"}] * 65},
        {"replica_ticket": ""},
        {"expires": "later"},
        {"expires": True},
        {"keep_copy": "yes"},
        {"upload_id": None},
    ]
    for over in bad_cases:
        with pytest.raises(BadRequest):
            RelaySession.from_json(session_json(**over))
    assert RelaySession.from_json(session_json(replicas=[], keep_copy=True)).keep_copy


def test_registry_hides_and_sweeps_expired_sessions() -> None:
    reg = SessionRegistry()
    reg.add(RelaySession.from_json(session_json(upload_id="old", expires=100.0)))
    reg.add(RelaySession.from_json(session_json(upload_id="new", expires=300.0)))
    assert reg.get(UploadId("old"), now=50.0).upload_id == "old"
    with pytest.raises(NotFound):
        reg.get(UploadId("old"), now=200.0)
    assert reg.sweep(now=200.0) == 1
    assert len(reg) == 1
    assert reg.get(UploadId("new"), now=200.0).upload_id == "new"
    assert reg.remove(UploadId("new")) and not reg.remove(UploadId("new"))
    with pytest.raises(NotFound):
        reg.get(UploadId("missing"), now=0.0)
