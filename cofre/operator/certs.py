"""A BackupCluster's CA and its services' certificates, when the operator issues them itself.

What a pass must change is decided here from the Secrets as they are and the time; only making
keys is not pure. A certificate is re-issued when 2/3 of its lifetime has passed
(``cofre.tls.renew_at``), so it is replaced long before it expires, and the Secret is patched in
place: the kubelet updates the mounted files and the services re-read them, no pod restarts.

The CA rotates in three steps, none of which breaks a connection:
1. at the CA's own renew_at a new CA is made and added to every ca.crt bundle (it signs nothing
   yet) -- the "next" CA;
2. once the bundles had time to reach every pod (``switch_delay``), the next CA signs: the
   certificates are re-issued by it, the old CA stays in the bundles as "previous";
3. the previous CA leaves the bundles when it expires.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from cofre import tls
from cofre.operator.builders import (
    CA_KEY,
    CA_KEY_KEY,
    CERT_KEY,
    KEY_KEY,
    NEXT_CA_KEY,
    NEXT_CA_KEY_KEY,
    NEXT_CA_SINCE,
    PREVIOUS_CA_KEY,
)

# Longest wait between a new CA joining the bundles and it signing: the kubelet refreshes mounted
# Secrets within about a minute, and the services re-read their files when they change.
CA_SWITCH_DELAY = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class CaState:
    """The CA Secret's content: the CA that signs, and during a rotation the next or previous."""

    signing: tls.Pem
    next: tls.Pem | None = None
    next_since: datetime | None = None
    previous: bytes | None = None

    def bundle(self) -> bytes:
        """Every CA certificate a peer must trust now, signing CA first."""
        certs = [self.signing.cert]
        if self.next is not None:
            certs.append(self.next.cert)
        if self.previous is not None:
            certs.append(self.previous)
        return b"".join(c if c.endswith(b"\n") else c + b"\n" for c in certs)


@dataclass(frozen=True, kw_only=True)
class Leaf:
    """A service's TLS Secret: its certificate, key and the CA bundle it trusts."""

    cert: bytes
    key: bytes
    ca: bytes


def _data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    if secret is None:
        return {}
    raw = secret.get("data") or {}
    return {k: base64.b64decode(v) for k, v in raw.items() if v}


def read_ca(secret: Mapping[str, Any] | None) -> CaState | None:
    """The CA Secret as a ``CaState``; None when it is missing or holds no usable CA."""
    data = _data(secret)
    if not data.get(CA_KEY) or not data.get(CA_KEY_KEY) or not _parses(data[CA_KEY]):
        return None
    upcoming = None
    since = None
    if data.get(NEXT_CA_KEY) and data.get(NEXT_CA_KEY_KEY) and _parses(data[NEXT_CA_KEY]):
        upcoming = tls.Pem(cert=data[NEXT_CA_KEY], key=data[NEXT_CA_KEY_KEY])
        annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
        since = _parse_time(annotations.get(NEXT_CA_SINCE))
    previous = data.get(PREVIOUS_CA_KEY)
    return CaState(
        signing=tls.Pem(cert=data[CA_KEY], key=data[CA_KEY_KEY]),
        next=upcoming,
        # A next CA without its date (edited by hand): counted from now on.
        next_since=since,
        previous=previous if previous and _parses(previous) else None,
    )


def read_leaf(secret: Mapping[str, Any] | None) -> Leaf | None:
    data = _data(secret)
    if not data.get(CERT_KEY) or not data.get(KEY_KEY) or not _parses(data[CERT_KEY]):
        return None
    return Leaf(cert=data[CERT_KEY], key=data[KEY_KEY], ca=data.get(CA_KEY, b""))


def switch_delay(ca_cert: bytes) -> timedelta:
    """Wait between the next CA joining the bundles and it signing: CA_SWITCH_DELAY, or half of
    what is left of the signing CA after its renew_at if that is shorter."""
    return min(CA_SWITCH_DELAY, (tls.not_after(ca_cert) - tls.renew_at(ca_cert)) / 2)


def new_ca(*, cluster: str, valid_for: timedelta, now: datetime) -> tls.Pem:
    return tls.new_ca(common_name=f"cofre {cluster} CA", valid_for=valid_for, now=now)


def plan_ca(
    state: CaState | None, *, cluster: str, valid_for: timedelta, now: datetime
) -> tuple[CaState, list[str]]:
    """-> (the CA state this pass leaves, what changed and why; empty: nothing)."""
    if state is None:
        return CaState(signing=new_ca(cluster=cluster, valid_for=valid_for, now=now)), ["created"]
    if now >= tls.not_after(state.signing.cert):
        # The operator was away past the CA's life: nothing it signed is valid any more.
        fresh = new_ca(cluster=cluster, valid_for=valid_for, now=now)
        return CaState(signing=fresh), ["the CA had expired; replaced"]
    changes: list[str] = []
    if state.previous is not None and now >= tls.not_after(state.previous):
        state = replace(state, previous=None)
        changes.append("the previous CA expired and left the bundle")
    upcoming = state.next
    if upcoming is not None:
        since = state.next_since or now
        if state.next_since is None:
            state = replace(state, next_since=now)
            changes.append("the next CA had no date; counted from now")
        if now >= since + switch_delay(state.signing.cert):
            state = CaState(signing=upcoming, previous=state.signing.cert)
            changes.append("the next CA signs now; the previous one stays trusted until it expires")
    elif now >= tls.renew_at(state.signing.cert):
        upcoming = new_ca(cluster=cluster, valid_for=valid_for, now=now)
        state = replace(state, next=upcoming, next_since=now)
        changes.append("renewal due: a next CA joins the bundle")
    return state, changes


def leaf_reason(
    leaf: Leaf | None, *, ca: CaState, dns_names: Sequence[str], now: datetime
) -> str | None:
    """Why the certificate must be issued again (None: it is good)."""
    if leaf is None:
        return "missing"
    if now >= tls.renew_at(leaf.cert):
        return f"renewal due (expires {tls.not_after(leaf.cert).isoformat()})"
    if not issued_by(leaf.cert, ca.signing.cert):
        return "signed by another CA"
    if sorted(dns_names_of(leaf.cert)) != sorted(dns_names):
        return "names changed"
    return None


def issue_leaf(
    ca: CaState, *, dns_names: Sequence[str], valid_for: timedelta, now: datetime
) -> Leaf:
    """A certificate for ``dns_names`` from the signing CA, never outliving it."""
    lifetime = min(valid_for, tls.not_after(ca.signing.cert) - now)
    pem = tls.issue(
        ca.signing, common_name=dns_names[0], dns_names=dns_names, valid_for=lifetime, now=now
    )
    return Leaf(cert=pem.cert, key=pem.key, ca=ca.bundle())


def plan_leaf(
    leaf: Leaf | None,
    *,
    ca: CaState,
    dns_names: Sequence[str],
    valid_for: timedelta,
    now: datetime,
) -> tuple[Leaf, str | None]:
    """-> (the TLS Secret's content after this pass, why it changed; None: unchanged)."""
    why = leaf_reason(leaf, ca=ca, dns_names=dns_names, now=now)
    if why is not None:
        return issue_leaf(ca, dns_names=dns_names, valid_for=valid_for, now=now), why
    assert leaf is not None
    if leaf.ca != ca.bundle():
        return replace(leaf, ca=ca.bundle()), "CA bundle changed"
    return leaf, None


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _parses(pem: bytes) -> bool:
    try:
        _load(pem)
    except ValueError:
        return False
    return True


def dns_names_of(cert_pem: bytes) -> list[str]:
    try:
        ext = _load(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.DNSName))


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether the CA ``ca_pem`` signed ``cert_pem`` (issuer name and signature)."""
    try:
        _load(cert_pem).verify_directly_issued_by(_load(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def newest_ca_id(bundle: bytes) -> str | None:
    """A short id (SHA-256 of the DER) of the newest certificate in ``bundle``; None: none parse.

    It changes when a CA joins the bundle, not when the signing CA switches or an old one leaves:
    only the first needs the pods to read their bundle again.
    """
    try:
        certs = x509.load_pem_x509_certificates(bundle)
    except ValueError:
        return None
    newest = max(certs, key=lambda c: (c.not_valid_before_utc, c.serial_number))
    return newest.fingerprint(hashes.SHA256()).hex()[:16]


def serial_of(cert_pem: bytes) -> int:
    return _load(cert_pem).serial_number


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
