"""TLS for every cofre connection: a CA, certificates with SANs, and SSL contexts.

The ``cryptography`` package is imported by the functions that make or read certificates, not
with the module: the CLI only needs the ``ssl`` contexts and stays smaller without it.

Keys are EC P-256 (small, fast handshakes, accepted everywhere). A CA signs leaf certificates
that carry both the server and the client auth usage, so one certificate serves a service and
the calls it makes. ``renew_at`` is the single rule for when a certificate is replaced: once two
thirds of its lifetime have passed, which leaves a third of it to notice and retry a failure.

A server's context is reloaded in place when its certificate files change
(``CertReloader``): new handshakes get the new certificate, connections already open keep
theirs, so a rotation needs no restart and cuts no request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

# Certificates start this long before they are made (at most a tenth of their lifetime, so a
# short-lived one is not due for renewal at once): a peer whose clock runs a little behind
# still accepts a certificate issued a moment ago.
CLOCK_SKEW = timedelta(minutes=5)


def _backdated(start: datetime, valid_for: timedelta) -> datetime:
    return start - min(CLOCK_SKEW, valid_for / 10)


# How often a server looks at its certificate files: a stat of two files, cheap; Kubernetes
# takes up to a minute or two to update a mounted Secret anyway.
RELOAD_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cofre"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def new_ca(*, common_name: str, valid_for: timedelta, now: datetime | None = None) -> Pem:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    start = _now(now)
    key = _new_key()
    name = _name(common_name)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_backdated(start, valid_for))
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert=cert.public_bytes(serialization.Encoding.PEM), key=_key_pem(key))


def issue(
    ca: Pem,
    *,
    common_name: str,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    valid_for: timedelta,
    now: datetime | None = None,
) -> Pem:
    """A leaf certificate signed by ``ca`` for these names, usable as server and as client.

    It never outlives its CA: past the CA's end it would not verify anyway.
    Raises ValueError for an IP address that does not parse or a certificate without names.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if not dns_names and not ip_addresses:
        raise ValueError("a certificate needs at least one DNS name or IP address")
    start = _now(now)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = _new_key()
    public = key.public_key()
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    end = min(start + valid_for, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_backdated(start, valid_for))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pem(cert=cert.public_bytes(serialization.Encoding.PEM), key=_key_pem(key))


def not_before(cert_pem: bytes) -> datetime:
    """The first moment the (first) certificate in ``cert_pem`` is valid, in UTC."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem).not_valid_before_utc


def not_after(cert_pem: bytes) -> datetime:
    """The last moment the (first) certificate in ``cert_pem`` is valid, in UTC."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def renew_at(cert_pem: bytes) -> datetime:
    """When the certificate is due for replacement: two thirds into its lifetime."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * 2 / 3


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def server_context(*, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context presenting this certificate (chain) and key.

    Raises OSError for unreadable files, ssl.SSLError for a key that does not match.
    """
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    return context


def client_context(*, ca_file: Path | None, ca_pem: bytes | None = None) -> ssl.SSLContext:
    """A client context verifying peers and their host names against ``ca_file`` or the PEM
    ``ca_pem`` (a CA read from a Kubernetes Secret).

    With neither, the system's CAs (a service behind a public certificate).
    Raises ssl.SSLError for a CA that does not parse.
    """
    cafile = str(ca_file) if ca_file is not None else None
    cadata = ca_pem.decode("ascii") if ca_pem is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile, cadata=cadata)
    return _harden(context)


def _signature(*paths: Path) -> tuple[tuple[int, int, int], ...] | None:
    """What changes when a file is replaced or rewritten (symlink swaps included)."""
    try:
        stats = [os.stat(path) for path in paths]
    except OSError:
        return None
    return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)


class CertReloader:
    """Keeps a server context's certificate in step with its files.

    A pair that does not load (a cert written before its key, a missing file) is skipped and
    tried again at the next look, so the context always holds a whole, matching pair.
    """

    def __init__(self, *, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._seen = _signature(cert_file, key_file)
        self.context = server_context(cert_file=cert_file, key_file=key_file)
        self.reloads = 0

    def check(self) -> bool:
        """Reload if the files changed; -> True when a new certificate was loaded."""
        seen = _signature(self.cert_file, self.key_file)
        if seen is None or seen == self._seen:
            return False
        try:
            cert, key = self.cert_file.read_bytes(), self.key_file.read_bytes()
            with tempfile.TemporaryDirectory(prefix="cofre-tls-") as tmp:
                # A private copy cannot change between the trial and the load; the trial on a
                # fresh context matters because a failed load leaves a context half-changed.
                copy_cert, copy_key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
                copy_cert.write_bytes(cert)
                copy_key.write_bytes(key)
                server_context(cert_file=copy_cert, key_file=copy_key)
                # New handshakes use the new pair; open connections keep the one they agreed.
                self.context.load_cert_chain(certfile=copy_cert, keyfile=copy_key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("certificate not reloaded cert_file=%s error=%s", self.cert_file, exc)
            return False
        self._seen = seen
        self.reloads += 1
        log.info(
            "certificate reloaded cert_file=%s not_after=%s",
            self.cert_file,
            not_after(cert).isoformat(),
        )
        return True

    async def run(self, *, interval_s: float = RELOAD_INTERVAL_S) -> None:
        """Look at the files every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.check()
            except Exception:  # a surprise must not end the reloading for good
                log.exception("certificate check failed cert_file=%s", self.cert_file)
