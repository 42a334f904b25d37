"""The operator's CA and certificates: when each is issued, renewed and rotated (pure, with the
time given), and what the Secrets hold through a CA rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from cofre import tls
from cofre.operator import builders, certs

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CA_LIFE = timedelta(days=30)
LEAF_LIFE = timedelta(days=3)
NAMES = ["*.demo-storage.ns.svc", "*.demo-storage.ns.svc.cluster.local"]


def _plan(state: certs.CaState | None, now: datetime) -> tuple[certs.CaState, list[str]]:
    return certs.plan_ca(state, cluster="demo", valid_for=CA_LIFE, now=now)


def _leaf(state: certs.CaState, leaf: certs.Leaf | None, now: datetime) -> tuple[certs.Leaf, Any]:
    return certs.plan_leaf(leaf, ca=state, dns_names=NAMES, valid_for=LEAF_LIFE, now=now)


def _subjects(bundle: bytes) -> list[x509.Name]:
    return [c.subject for c in x509.load_pem_x509_certificates(bundle)]


def _secret(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for a built Secret (the builder's dict, as JSON has it)."""
    return {"metadata": obj["metadata"], "data": obj["data"]}


def test_a_new_cluster_gets_a_ca_and_certificates_it_signed() -> None:
    ca, changes = _plan(None, T0)
    assert changes == ["created"]
    assert ca.next is None and ca.previous is None
    assert ca.bundle() == ca.signing.cert
    leaf, why = _leaf(ca, None, T0)
    assert why == "missing"
    assert certs.issued_by(leaf.cert, ca.signing.cert)
    assert sorted(certs.dns_names_of(leaf.cert)) == sorted(NAMES)
    assert leaf.ca == ca.bundle()
    assert tls.not_after(leaf.cert) == T0 + LEAF_LIFE
    # Nothing changes on the next pass.
    assert _plan(ca, T0 + timedelta(hours=1)) == (ca, [])
    assert _leaf(ca, leaf, T0 + timedelta(hours=1)) == (leaf, None)


def test_a_certificate_is_renewed_once_two_thirds_of_its_life_passed() -> None:
    ca, _ = _plan(None, T0)
    leaf, _ = _leaf(ca, None, T0)
    due = tls.renew_at(leaf.cert)
    assert T0 + LEAF_LIFE * 0.6 < due < T0 + LEAF_LIFE * 0.7
    assert _leaf(ca, leaf, due - timedelta(seconds=1))[1] is None
    renewed, why = _leaf(ca, leaf, due)
    assert why is not None and why.startswith("renewal due")
    assert certs.serial_of(renewed.cert) != certs.serial_of(leaf.cert)
    assert renewed.key != leaf.key
    assert tls.not_after(renewed.cert) == due + LEAF_LIFE


def test_changed_names_or_another_ca_reissue_the_certificate() -> None:
    ca, _ = _plan(None, T0)
    leaf, _ = _leaf(ca, None, T0)
    assert certs.leaf_reason(leaf, ca=ca, dns_names=["other"], now=T0) == "names changed"
    other, _ = _plan(None, T0)
    assert certs.leaf_reason(leaf, ca=other, dns_names=NAMES, now=T0) == "signed by another CA"


def test_a_certificate_never_outlives_its_ca() -> None:
    ca, _ = _plan(None, T0)
    late = T0 + CA_LIFE - timedelta(days=1)
    leaf = certs.issue_leaf(ca, dns_names=NAMES, valid_for=LEAF_LIFE, now=late)
    assert tls.not_after(leaf.cert) == tls.not_after(ca.signing.cert)


def test_the_ca_rotates_trusted_everywhere_before_it_signs() -> None:
    ca, _ = _plan(None, T0)
    old = ca.signing
    first_id = certs.newest_ca_id(ca.bundle())
    # 1. At the CA's renew_at a next CA joins the bundle; it signs nothing yet.
    due = tls.renew_at(old.cert)
    leaf, _ = _leaf(ca, None, due - timedelta(hours=1))
    ca, changes = _plan(ca, due)
    assert changes == ["renewal due: a next CA joins the bundle"]
    assert ca.signing == old and ca.next is not None and ca.next_since == due
    assert len(_subjects(ca.bundle())) == 2
    joined_id = certs.newest_ca_id(ca.bundle())
    assert joined_id != first_id
    # The certificates keep their key and signature; only their ca.crt grows.
    updated, why = _leaf(ca, leaf, due)
    assert why == "CA bundle changed"
    assert (updated.cert, updated.key, updated.ca) == (leaf.cert, leaf.key, ca.bundle())
    # 2. Not before the bundles had time to reach the pods...
    delay = certs.switch_delay(old.cert)
    assert delay == certs.CA_SWITCH_DELAY
    assert _plan(ca, due + delay - timedelta(seconds=1))[1] == []
    # ... then the next CA signs and the old one stays trusted.
    upcoming = ca.next
    ca, changes = _plan(ca, due + delay)
    assert changes == ["the next CA signs now; the previous one stays trusted until it expires"]
    assert ca.signing == upcoming and ca.next is None and ca.previous == old.cert
    assert len(_subjects(ca.bundle())) == 2
    # The pods already trust the new CA: nothing to roll for the switch.
    assert certs.newest_ca_id(ca.bundle()) == joined_id
    reissued, why = _leaf(ca, updated, due + delay)
    assert why == "signed by another CA"
    assert certs.issued_by(reissued.cert, ca.signing.cert)
    # 3. The old CA leaves the bundles when it expires.
    end = tls.not_after(old.cert)
    ca, changes = _plan(ca, end)
    assert changes == ["the previous CA expired and left the bundle"]
    assert ca.previous is None and ca.bundle() == ca.signing.cert
    assert certs.newest_ca_id(ca.bundle()) == joined_id


def test_an_expired_ca_is_replaced_outright() -> None:
    ca, _ = _plan(None, T0)
    fresh, changes = _plan(ca, T0 + CA_LIFE + timedelta(days=1))
    assert changes == ["the CA had expired; replaced"]
    assert fresh.signing != ca.signing and fresh.next is None and fresh.previous is None


def test_a_short_ca_switches_within_its_life() -> None:
    ca = certs.CaState(signing=tls.new_ca(common_name="x", valid_for=timedelta(minutes=9), now=T0))
    delay = certs.switch_delay(ca.signing.cert)
    assert timedelta(0) < delay < certs.CA_SWITCH_DELAY
    assert tls.renew_at(ca.signing.cert) + delay < tls.not_after(ca.signing.cert)


def test_secrets_round_trip_through_the_builders() -> None:
    ca, _ = _plan(None, T0)
    ca, _ = _plan(ca, tls.renew_at(ca.signing.cert))
    assert ca.next is not None and ca.next_since is not None
    kw = {"name": "demo", "namespace": "ns"}
    secret = builders.build_ca_secret(
        cert=ca.signing.cert,
        key=ca.signing.key,
        next_cert=ca.next.cert,
        next_key=ca.next.key,
        next_since=ca.next_since.isoformat(),
        **kw,
    )
    assert certs.read_ca(_secret(secret)) == ca
    leaf, _ = _leaf(ca, None, T0)
    tls_secret = builders.build_tls_secret(
        component="storage-node", cert=leaf.cert, key=leaf.key, ca=leaf.ca, **kw
    )
    assert certs.read_leaf(_secret(tls_secret)) == leaf


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"ca.crt": base64.b64encode(b"not a certificate").decode(), "ca.key": "a2V5"},
        {"ca.crt": ""},
    ],
)
def test_unusable_secrets_read_as_missing(data: dict[str, str] | None) -> None:
    secret = None if data is None else {"metadata": {"name": "x"}, "data": data}
    assert certs.read_ca(secret) is None
    leaf = None if data is None else {"metadata": {}, "data": {"tls.crt": data.get("ca.crt", "")}}
    assert certs.read_leaf(leaf) is None


def test_newest_ca_id_of_garbage_is_none() -> None:
    assert certs.newest_ca_id(b"nothing here") is None
