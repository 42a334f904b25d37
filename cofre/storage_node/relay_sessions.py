"""Upload sessions a primary relays for: who the replicas are, and until when.

Pure in-memory state; the manager registers a session, the client uses it, and it expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cofre.errors import BadRequest, NotFound
from cofre.models import NodeId, UploadId, parse_node_id
from cofre.storage_node.inputs import MAX_REPLICAS, parse_bool, parse_upload_id, parse_url


@dataclass(frozen=True, slots=True)
class Replica:
    node_id: NodeId
    url: str


@dataclass(frozen=True, slots=True)
class RelaySession:
    upload_id: UploadId
    replicas: tuple[Replica, ...]
    replica_ticket: str
    keep_copy: bool
    expires: float  # unix seconds

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RelaySession:
        raw_replicas = data.get("replicas")
        if not isinstance(raw_replicas, list) or len(raw_replicas) > MAX_REPLICAS:
            raise BadRequest(f"replicas must be a list of at most {MAX_REPLICAS} nodes")
        replicas: list[Replica] = []
        for item in raw_replicas:
            if not isinstance(item, dict):
                raise BadRequest("each replica must be an object {node_id, url}")
            replicas.append(
                Replica(
                    node_id=parse_node_id(item.get("node_id")),
                    url=parse_url(item.get("url"), what="a replica url"),
                )
            )
        ticket = data.get("replica_ticket")
        if not isinstance(ticket, str) or not ticket or len(ticket) > 16384:
            raise BadRequest("replica_ticket must be a ticket string")
        expires = data.get("expires")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise BadRequest("expires must be a unix time in seconds")
        keep_copy = parse_bool(data.get("keep_copy", False), what="keep_copy")
        if not replicas and not keep_copy:
            raise BadRequest("a session needs at least one replica or keep_copy")
        return cls(
            upload_id=parse_upload_id(data.get("upload_id")),
            replicas=tuple(replicas),
            replica_ticket=ticket,
            keep_copy=keep_copy,
            expires=float(expires),
        )


class SessionRegistry:
    """Sessions by upload id. Expired sessions are invisible, and removed by :meth:`sweep`."""

    def __init__(self) -> None:
        self._sessions: dict[UploadId, RelaySession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: RelaySession) -> None:
        # Re-registering replaces: the manager may retry a registration it could not confirm.
        self._sessions[session.upload_id] = session

    def get(self, upload_id: UploadId, *, now: float | None = None) -> RelaySession:
        session = self._sessions.get(upload_id)
        if session is None or session.expires < (time.time() if now is None else now):
            raise NotFound(f"no open upload session {upload_id} on this node")
        return session

    def remove(self, upload_id: UploadId) -> bool:
        return self._sessions.pop(upload_id, None) is not None

    def sweep(self, *, now: float | None = None) -> int:
        """Drop expired sessions; how many were dropped."""
        now = time.time() if now is None else now
        expired = [uid for uid, s in self._sessions.items() if s.expires < now]
        for uid in expired:
            del self._sessions[uid]
        return len(expired)
