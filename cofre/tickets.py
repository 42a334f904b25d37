"""Upload tickets: what the manager signs so that nodes accept chunk writes.

A ticket is ``base64url(payload JSON) "." base64url(HMAC-SHA256(key, payload))``. The key is
derived from the cluster token, so every node can verify a ticket without asking the manager.
A ticket names the upload, the nodes that may store chunks under it, and an expiry.
The client's ticket names only the primary: the replicas appear only in the ticket the manager
hands the primary directly, so a client cannot learn where its copies live.

A ticket has a scope: ``w`` (write: an upload's, a pull's) or ``r`` (read: what a manifest
answer carries, so a client holding a key, not the token, can read the chunks it lists from
the nodes named). A read ticket names no upload. A ticket without a scope is a write ticket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from cofre.errors import Forbidden
from cofre.models import NodeId, UploadId


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ticket_key(token: str) -> bytes:
    """A key for tickets only, so a leaked ticket key never is the token itself."""
    return hmac.new(token.encode(), b"cofre-ticket-v1", hashlib.sha256).digest()


class Scope(StrEnum):
    WRITE = "w"
    READ = "r"


@dataclass(frozen=True, slots=True)
class Ticket:
    upload_id: UploadId
    nodes: tuple[NodeId, ...]
    expires: float  # unix seconds
    scope: Scope = Scope.WRITE

    def sign(self, key: bytes) -> str:
        fields: dict[str, object] = {"u": self.upload_id, "n": list(self.nodes), "e": self.expires}
        if self.scope is not Scope.WRITE:
            fields["s"] = self.scope.value
        payload = json.dumps(fields, separators=(",", ":")).encode()
        mac = hmac.new(key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}"

    @classmethod
    def verify(
        cls,
        text: str,
        key: bytes,
        *,
        node_id: NodeId,
        now: float | None = None,
        scope: Scope = Scope.WRITE,
    ) -> Ticket:
        """Check signature, expiry, scope and that ``node_id`` may act under it."""
        try:
            payload_b64, mac_b64 = text.split(".")
            payload = _unb64(payload_b64)
            mac = _unb64(mac_b64)
        except ValueError as exc:
            raise Forbidden("malformed ticket") from exc
        expected = hmac.new(key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise Forbidden("ticket signature does not verify")
        try:
            data = json.loads(payload)
            ticket = cls(
                upload_id=UploadId(str(data["u"])),
                nodes=tuple(NodeId(str(n)) for n in data["n"]),
                expires=float(data["e"]),
                scope=Scope(data.get("s", Scope.WRITE.value)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise Forbidden("malformed ticket payload") from exc
        # NaN compares false with every time, so a NaN expiry would never expire.
        if not math.isfinite(ticket.expires):
            raise Forbidden("ticket expiry is not a finite time")
        if (time.time() if now is None else now) > ticket.expires:
            raise Forbidden(f"ticket for upload {ticket.upload_id} expired")
        if ticket.scope is not scope:
            what = "reads" if ticket.scope is Scope.READ else "writes"
            raise Forbidden(f"ticket allows {what} only")
        if node_id not in ticket.nodes:
            raise Forbidden(f"ticket does not name node {node_id}")
        return ticket
