"""The relay's session registry."""

from __future__ import annotations

import pytest

from cofre.errors import NotFound
from cofre.models import UploadId
from cofre.protocol.node_api import OpenSession
from cofre.storage_node.relay_sessions import SessionRegistry


def _session(upload_id: str, expires: float) -> OpenSession:
    return OpenSession.model_validate(
        {
            "upload_id": upload_id,
            "replicas": [{"node_id": "node-1", "url": "http://10.0.0.1:8081/"}],
            "replica_ticket": "t.s",
            "expires": expires,
        }
    )


def test_registry_hides_and_sweeps_expired_sessions() -> None:
    reg = SessionRegistry()
    reg.add(_session("old", 100.0))
    reg.add(_session("new", 300.0))
    assert reg.get(UploadId("old"), now=50.0).upload_id == "old"
    with pytest.raises(NotFound):
        reg.get(UploadId("old"), now=200.0)
    assert reg.sweep(now=200.0) == 1
    assert len(reg) == 1
    assert reg.get(UploadId("new"), now=200.0).upload_id == "new"
    assert reg.remove(UploadId("new")) and not reg.remove(UploadId("new"))
    with pytest.raises(NotFound):
        reg.get(UploadId("missing"), now=0.0)
