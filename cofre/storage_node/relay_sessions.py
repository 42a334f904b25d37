"""Upload sessions a primary relays for: who the replicas are, and until when.

Pure in-memory state; the manager registers a session, the client uses it, and it expires.
"""

from __future__ import annotations

import time

from cofre.errors import NotFound
from cofre.models import UploadId
from cofre.protocol.node_api import OpenSession

# A session is what the manager registered (POST /v1/sessions), kept as it came.
RelaySession = OpenSession


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
