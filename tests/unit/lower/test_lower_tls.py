"""cofre.tls: the CA, issued certificates, renewal timing, and contexts doing real handshakes
in memory (no sockets: the TLS records pass through memory BIOs)."""

from __future__ import annotations

import ipaddress
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from cofre import tls

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _write(tmp_path: Path, pem: tls.Pem, stem: str = "tls") -> tuple[Path, Path]:
    cert_file, key_file = tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"
    cert_file.write_bytes(pem.cert)
    key_file.write_bytes(pem.key)
    return cert_file, key_file


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, *, host: str) -> x509.Certificate:
    """Run a TLS handshake through memory; -> the certificate the client was shown."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done_c = done_s = False
    for _ in range(20):
        if not done_c:
            try:
                c.do_handshake()
                done_c = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not done_s:
            try:
                s.do_handshake()
                done_s = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                pass  # the client's alert: the client side raises the reason
        c_in.write(s_out.read())
        if done_c and done_s:
            break
    der = c.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_ca_is_a_ca_valid_from_now_for_the_time_asked() -> None:
    ca = tls.new_ca(common_name="cofre test CA", valid_for=timedelta(days=365), now=NOW)
    cert = _cert(ca.cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.subject == cert.issuer
    assert tls.not_after(ca.cert) == NOW + timedelta(days=365)
    # Backdated a little for peers whose clocks run behind.
    assert tls.not_before(ca.cert) == NOW - tls.CLOCK_SKEW
    assert b"PRIVATE KEY" in ca.key


def test_an_issued_certificate_carries_its_names_and_both_usages_and_verifies() -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=365), now=NOW)
    leaf = tls.issue(
        ca,
        common_name="manager",
        dns_names=["localhost", "cofre-manager.ns.svc"],
        ip_addresses=["127.0.0.1", "::1"],
        valid_for=timedelta(days=30),
        now=NOW,
    )
    cert = _cert(leaf.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "cofre-manager.ns.svc"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.issuer == _cert(ca.cert).subject
    assert tls.not_after(leaf.cert) == NOW + timedelta(days=30)
    # The chain verifies with the CA as the only trust anchor, for each of its names.
    verifier = (
        PolicyBuilder()
        .store(Store([_cert(ca.cert)]))
        .time(NOW + timedelta(days=1))
        .build_server_verifier(x509.DNSName("cofre-manager.ns.svc"))
    )
    chain = verifier.verify(cert, [])
    assert chain[-1] == _cert(ca.cert)


def test_a_wildcard_name_is_kept_as_given() -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=365), now=NOW)
    leaf = tls.issue(
        ca, common_name="nodes", dns_names=["*.nodes.ns.svc"], valid_for=timedelta(days=1)
    )
    sans = _cert(leaf.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["*.nodes.ns.svc"]


def test_a_certificate_never_outlives_its_ca() -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=10), now=NOW)
    leaf = tls.issue(ca, common_name="x", dns_names=["x"], valid_for=timedelta(days=90), now=NOW)
    assert tls.not_after(leaf.cert) == tls.not_after(ca.cert)


def test_bad_names_are_refused() -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=10), now=NOW)
    with pytest.raises(ValueError):
        tls.issue(ca, common_name="x", ip_addresses=["not-an-ip"], valid_for=timedelta(days=1))
    with pytest.raises(ValueError, match="at least one"):
        tls.issue(ca, common_name="x", valid_for=timedelta(days=1))


@pytest.mark.parametrize("days", [3, 90, 3650])
def test_renewal_is_due_two_thirds_into_the_lifetime(days: int) -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=days), now=NOW)
    start = NOW - tls.CLOCK_SKEW
    lifetime = timedelta(days=days) + tls.CLOCK_SKEW
    assert tls.renew_at(ca.cert) == start + lifetime * 2 / 3
    assert tls.not_before(ca.cert) < tls.renew_at(ca.cert) < tls.not_after(ca.cert)


def test_a_short_lived_certificate_is_backdated_a_tenth_and_due_after_its_issue() -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=1), now=NOW)
    leaf = tls.issue(ca, common_name="x", dns_names=["x"], valid_for=timedelta(seconds=30), now=NOW)
    assert tls.not_before(leaf.cert) == NOW - timedelta(seconds=3)
    # 2/3 of 33 s from NOW - 3 s: 19 s after the issue, 11 s before the end.
    assert tls.renew_at(leaf.cert) == NOW + timedelta(seconds=19)


def test_a_client_trusting_the_ca_completes_a_handshake_by_name_and_by_ip(
    tmp_path: Path,
) -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=30))
    leaf = tls.issue(
        ca,
        common_name="local",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        valid_for=timedelta(days=1),
    )
    cert_file, key_file = _write(tmp_path, leaf)
    ca_file, _ = _write(tmp_path, ca, "ca")
    server = tls.server_context(cert_file=cert_file, key_file=key_file)
    client = tls.client_context(ca_file=ca_file)
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    for host in ("localhost", "127.0.0.1"):
        assert _handshake(client, server, host=host) == _cert(leaf.cert)
    # The CA as PEM bytes (as read from a Secret) trusts the same.
    from_pem = tls.client_context(ca_file=None, ca_pem=ca.cert)
    assert _handshake(from_pem, server, host="localhost") == _cert(leaf.cert)


def test_a_client_refuses_another_ca_a_wrong_name_and_an_expired_certificate(
    tmp_path: Path,
) -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=30))
    ca_file, _ = _write(tmp_path, ca, "ca")
    other_file, _ = _write(tmp_path, tls.new_ca(common_name="other", valid_for=timedelta(1)), "o")
    leaf = tls.issue(ca, common_name="l", dns_names=["localhost"], valid_for=timedelta(days=1))
    server = tls.server_context(cert_file=_write(tmp_path, leaf)[0], key_file=tmp_path / "tls.key")

    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(tls.client_context(ca_file=other_file), server, host="localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(tls.client_context(ca_file=ca_file), server, host="elsewhere")

    old = tls.issue(
        ca,
        common_name="l",
        dns_names=["localhost"],
        valid_for=timedelta(hours=1),
        now=datetime.now(UTC) - timedelta(days=2),
    )
    expired = tls.server_context(
        cert_file=_write(tmp_path, old, "old")[0], key_file=tmp_path / "old.key"
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        _handshake(tls.client_context(ca_file=ca_file), expired, host="localhost")


def test_the_reloader_serves_the_new_pair_once_written_and_skips_a_half_written_one(
    tmp_path: Path,
) -> None:
    ca = tls.new_ca(common_name="ca", valid_for=timedelta(days=30))
    ca_file, _ = _write(tmp_path, ca, "ca")
    first = tls.issue(ca, common_name="1", dns_names=["localhost"], valid_for=timedelta(days=1))
    cert_file, key_file = _write(tmp_path, first)
    reloader = tls.CertReloader(cert_file=cert_file, key_file=key_file)
    client = tls.client_context(ca_file=ca_file)
    assert reloader.check() is False  # nothing changed
    assert _handshake(client, reloader.context, host="localhost") == _cert(first.cert)

    second = tls.issue(ca, common_name="2", dns_names=["localhost"], valid_for=timedelta(days=1))
    # Only the certificate written so far: it does not match the key, the old pair stays.
    cert_file.write_bytes(second.cert)
    os.utime(cert_file, ns=(1, 1))
    assert reloader.check() is False
    assert _handshake(client, reloader.context, host="localhost") == _cert(first.cert)

    key_file.write_bytes(second.key)
    assert reloader.check() is True
    assert reloader.reloads == 1
    assert _handshake(client, reloader.context, host="localhost") == _cert(second.cert)
