"""The local cluster's CA and certificate, kept in its data dir (``tls/``).

Made on the first `cofre local up` and kept: the CLI and anything else trusting ``ca.crt`` keeps
working across restarts. The certificate every child presents (names 127.0.0.1 and localhost)
lives with its key in one file, ``server.pem``, replaced by a rename: a child reloading it never
sees a new certificate with an old key. It is replaced once ``cofre.tls.renew_at`` has come,
while `local up` runs or when it starts; the children pick the new one up without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cofre import tls
from cofre.cli.localstate import write_private

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_PEM = "server.pem"
# The CA outlives many certificates; it is replaced (with a new certificate) only once two
# thirds of this have passed, and clients then need the new ca.crt.
CA_VALID_FOR = timedelta(days=3650)
# A certificate's lifetime by default: renewed after 20 days, so a cluster left running for
# weeks rotates while it runs.
CERT_VALID_FOR = timedelta(days=30)
NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class LocalTls:
    """Where a local cluster's TLS files are."""

    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / CA_CERT

    @property
    def server_file(self) -> Path:
        """Certificate and key in one file (COFRE_TLS_CERT_FILE and COFRE_TLS_KEY_FILE)."""
        return self.dir / SERVER_PEM

    def child_env(self) -> dict[str, str]:
        return {
            "COFRE_TLS_CERT_FILE": str(self.server_file),
            "COFRE_TLS_KEY_FILE": str(self.server_file),
            "COFRE_TLS_CA_FILE": str(self.ca_file),
        }

    def renew_at(self) -> datetime:
        """When the current certificate is due for replacement."""
        return tls.renew_at(self.server_file.read_bytes())

    def ensure(self, *, valid_for: timedelta = CERT_VALID_FOR, now: datetime | None = None) -> str:
        """Make or renew what is missing or due; -> what was done ("" when nothing was)."""
        now = now if now is not None else datetime.now(UTC)
        self.dir.mkdir(exist_ok=True, mode=0o700)
        ca = self._ca()
        done = []
        if ca is None or tls.renew_at(ca.cert) <= now:
            ca = tls.new_ca(common_name="cofre local CA", valid_for=CA_VALID_FOR, now=now)
            write_private(self.dir / CA_KEY, ca.key.decode())
            write_private(self.ca_file, ca.cert.decode())
            done.append(f"new CA {self.ca_file}")
        if done or self._server_due(ca, now):
            leaf = tls.issue(
                ca,
                common_name="cofre local",
                dns_names=NAMES,
                ip_addresses=ADDRESSES,
                valid_for=valid_for,
                now=now,
            )
            write_private(self.server_file, (leaf.cert + leaf.key).decode())
            done.append(f"certificate valid until {tls.not_after(leaf.cert):%Y-%m-%d %H:%M:%S}Z")
            log.info("local certificate issued file=%s", self.server_file)
        return ", ".join(done)

    def _ca(self) -> tls.Pem | None:
        try:
            return tls.Pem(cert=self.ca_file.read_bytes(), key=(self.dir / CA_KEY).read_bytes())
        except FileNotFoundError:
            return None

    def _server_due(self, ca: tls.Pem, now: datetime) -> bool:
        """Missing, unreadable, issued by another CA, or at its renewal time."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        try:
            pem = self.server_file.read_bytes()
            cert = x509.load_pem_x509_certificate(pem)
        except (OSError, ValueError):
            return True
        try:
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert))
        except (ValueError, TypeError, InvalidSignature):
            return True
        return tls.renew_at(pem) <= now
