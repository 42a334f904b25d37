"""The local cluster's TLS files: made once, kept, renewed when due, and read by `local up`'s
renewal check."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from cofre import tls
from cofre.cli.local import Renewal
from cofre.cli.localtls import LocalTls

NOW = datetime(2030, 6, 1, tzinfo=UTC)


def _leaf(local: LocalTls) -> x509.Certificate:
    return x509.load_pem_x509_certificate(local.server_file.read_bytes())


def test_first_start_makes_a_ca_and_a_certificate_for_loopback(tmp_path: Path) -> None:
    local = LocalTls(tmp_path / "tls")
    done = local.ensure(valid_for=timedelta(days=30), now=NOW)
    assert done.startswith(f"new CA {local.ca_file}") and "certificate valid until" in done
    leaf = _leaf(local)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(local.ca_file.read_bytes()))
    # Certificate and key in one file, loadable as both settings, private like the CA key.
    assert b"PRIVATE KEY" in local.server_file.read_bytes()
    tls.server_context(cert_file=local.server_file, key_file=local.server_file)
    for name in ("ca.key", "server.pem"):
        assert (local.dir / name).stat().st_mode & 0o777 == 0o600
    env = local.child_env()
    assert env["COFRE_TLS_CERT_FILE"] == env["COFRE_TLS_KEY_FILE"] == str(local.server_file)
    assert env["COFRE_TLS_CA_FILE"] == str(local.ca_file)


def test_files_are_kept_until_renewal_is_due_then_only_the_certificate_changes(
    tmp_path: Path,
) -> None:
    local = LocalTls(tmp_path / "tls")
    local.ensure(valid_for=timedelta(days=30), now=NOW)
    ca, first = local.ca_file.read_bytes(), local.server_file.read_bytes()
    assert local.ensure(valid_for=timedelta(days=30), now=NOW + timedelta(days=19)) == ""
    assert local.server_file.read_bytes() == first
    due = local.renew_at()
    assert NOW + timedelta(days=19) < due < NOW + timedelta(days=21)
    done = local.ensure(valid_for=timedelta(days=30), now=due)
    assert done.startswith("certificate valid until")
    assert local.ca_file.read_bytes() == ca
    assert local.server_file.read_bytes() != first


def test_a_certificate_of_another_ca_is_replaced(tmp_path: Path) -> None:
    local = LocalTls(tmp_path / "tls")
    local.ensure(now=NOW)
    other = tls.new_ca(common_name="cofre local CA", valid_for=timedelta(days=10), now=NOW)
    stray = tls.issue(other, common_name="x", dns_names=["localhost"], valid_for=timedelta(1))
    local.server_file.write_bytes(stray.cert + stray.key)
    assert local.ensure(now=NOW).startswith("certificate valid until")
    _leaf(local).verify_directly_issued_by(
        x509.load_pem_x509_certificate(local.ca_file.read_bytes())
    )


def test_renewal_writes_a_new_certificate_only_when_due(tmp_path: Path) -> None:
    local = LocalTls(tmp_path / "tls")
    local.ensure(valid_for=timedelta(hours=3), now=NOW)
    said: list[str] = []
    renewal = Renewal(local, timedelta(hours=3), say=said.append)
    assert renewal.check(now=NOW + timedelta(hours=1)) is False
    assert said == []
    assert renewal.check(now=local.renew_at()) is True
    assert said and said[0].startswith("TLS: certificate valid until")
    assert renewal.due == local.renew_at()
    assert Renewal(None, timedelta(hours=3)).check(now=NOW) is False
