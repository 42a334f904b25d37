import pytest

from cofre.errors import Forbidden
from cofre.models import NodeId, UploadId
from cofre.tickets import Ticket, ticket_key

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
