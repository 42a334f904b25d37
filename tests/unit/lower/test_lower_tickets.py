import base64
import hashlib
import hmac

import pytest

from cofre.errors import Forbidden
from cofre.models import NodeId, UploadId
from cofre.tickets import Scope, Ticket, ticket_key

KEY = ticket_key("cluster-token")
NOW = 1_000_000.0


def _ticket(*nodes: str, expires: float = NOW + 60) -> Ticket:
    return Ticket(UploadId("u1"), tuple(NodeId(n) for n in nodes), expires)


def test_a_signed_ticket_verifies_for_a_named_node() -> None:
    text = _ticket("node-1", "node-2").sign(KEY)
    ticket = Ticket.verify(text, KEY, node_id=NodeId("node-2"), now=NOW)
    assert ticket.upload_id == "u1"
    assert ticket.nodes == ("node-1", "node-2")


def test_a_ticket_does_not_verify_for_other_nodes() -> None:
    text = _ticket("node-1").sign(KEY)
    with pytest.raises(Forbidden, match="node-2"):
        Ticket.verify(text, KEY, node_id=NodeId("node-2"), now=NOW)


def test_expired_tickets_are_refused() -> None:
    text = _ticket("node-1", expires=NOW - 1).sign(KEY)
    with pytest.raises(Forbidden, match="expired"):
        Ticket.verify(text, KEY, node_id=NodeId("node-1"), now=NOW)


@pytest.mark.parametrize("expires", [float("nan"), float("inf"), float("-inf")])
def test_a_signed_ticket_with_a_non_finite_expiry_is_refused(expires: float) -> None:
    # NaN compares false with every time: such a ticket would otherwise never expire.
    text = _ticket("node-1", expires=expires).sign(KEY)
    with pytest.raises(Forbidden, match="finite"):
        Ticket.verify(text, KEY, node_id=NodeId("node-1"), now=NOW)


def test_tampered_or_foreign_tickets_are_refused() -> None:
    text = _ticket("node-1").sign(KEY)
    payload, mac = text.split(".")
    forged = _ticket("node-1", "node-9").sign(ticket_key("other-token"))
    for bad in [forged, payload + "." + mac[:-2] + "AA", "garbage", payload]:
        with pytest.raises(Forbidden):
            Ticket.verify(bad, KEY, node_id=NodeId("node-1"), now=NOW)


def test_ticket_key_is_not_the_token() -> None:
    assert ticket_key("t") != b"t"
    assert ticket_key("t") == ticket_key("t")
    assert ticket_key("t") != ticket_key("u")


def test_a_read_ticket_reads_and_a_write_ticket_writes_never_the_other_way() -> None:
    read = Ticket(UploadId(""), (NodeId("node-1"),), NOW + 60, scope=Scope.READ).sign(KEY)
    write = _ticket("node-1").sign(KEY)
    node = NodeId("node-1")
    assert Ticket.verify(read, KEY, node_id=node, now=NOW, scope=Scope.READ).scope is Scope.READ
    assert Ticket.verify(write, KEY, node_id=node, now=NOW).scope is Scope.WRITE
    with pytest.raises(Forbidden, match="allows reads only"):
        Ticket.verify(read, KEY, node_id=node, now=NOW)
    with pytest.raises(Forbidden, match="allows writes only"):
        Ticket.verify(write, KEY, node_id=node, now=NOW, scope=Scope.READ)
    # A read ticket too names its nodes and expires.
    with pytest.raises(Forbidden, match="node-2"):
        Ticket.verify(read, KEY, node_id=NodeId("node-2"), now=NOW, scope=Scope.READ)
    with pytest.raises(Forbidden, match="expired"):
        Ticket.verify(read, KEY, node_id=node, now=NOW + 61, scope=Scope.READ)


def test_an_unknown_scope_is_a_malformed_ticket() -> None:
    payload = b'{"u":"","n":["node-1"],"e":1000060.0,"s":"x"}'
    mac = hmac.new(KEY, payload, hashlib.sha256).digest()
    text = ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in (payload, mac))
    with pytest.raises(Forbidden, match="malformed"):
        Ticket.verify(text, KEY, node_id=NodeId("node-1"), now=NOW, scope=Scope.READ)
