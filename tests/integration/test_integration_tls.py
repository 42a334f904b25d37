"""TLS between real processes: `cofre local up` over HTTPS, the CLI trusting only the CA it is
given, plain HTTP refused, and certificates replaced under running services without a failed
request."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from cofre import tls
from cofre.cli.exitcodes import ExitCode

from ..helpers import eventually_sync


def _served_serial(url: str) -> int:
    """The serial number of the certificate the service at ``url`` presents now (looked at,
    not verified: an expired one is what some tests look for)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls_sock,
    ):
        der = tls_sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _write_pem(path: Path, pem: tls.Pem) -> None:
    """Certificate and key in one file, replaced by a rename (as `local up` does)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(pem.cert + pem.key)
    os.replace(tmp, path)


def test_put_and_get_go_over_https_to_the_manager_and_every_node(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    assert cluster.url.startswith("https://127.0.0.1:")
    assert cluster.ca == str(cluster.data_dir / "tls" / "ca.crt")
    state = cluster.state()
    assert state["ca_file"] == cluster.ca and state["insecure"] is False
    assert all(n["url"].startswith("https://127.0.0.1:") for n in state["nodes"])
    src = it.random_file(tmp_path / "f.bin", 9 * 1024 * 1024)
    env = dict(cluster.env, COFRE_LOG_LEVEL="DEBUG")
    put = cluster.cli("put", str(src), "--name", "tls/f.bin", env=env)
    assert put.code == 0, put.err
    get = cluster.cli("get", "tls/f.bin", "-o", str(tmp_path / "back"), env=env)
    assert get.code == 0, get.err
    assert it.sha256_file(tmp_path / "back") == it.sha256_file(src)
    urls = [
        line.split(" url=", 1)[1]
        for line in put.err.splitlines() + get.err.splitlines()
        if " request method=" in line
    ]
    assert urls and all(u.startswith("https://127.0.0.1:") for u in urls), urls
    # The chunks went to nodes, over https too.
    assert len(it.request_hosts(put.err)) >= 2


def test_the_local_cluster_is_found_with_its_ca_from_the_state_file(
    cluster: Any, tmp_path: Path, it: Any
) -> None:
    """Only the data dir: the manager, token and CA come from `local up`'s state file."""
    env = dict(it.base_env(), COFRE_DATA_DIR=str(cluster.data_dir))
    result = it.run_cli(["status"], env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.err == ""


def test_a_wrong_ca_is_refused_naming_the_host(cluster: Any, tmp_path: Path, it: Any) -> None:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(tls.new_ca(common_name="another CA", valid_for=timedelta(days=1)).cert)
    result = cluster.cli("ls", env=dict(cluster.env, COFRE_CA=str(other)))
    assert result.code == ExitCode.UNAVAILABLE
    line = it.one_error_line(result)
    assert f"certificate of 127.0.0.1:{cluster.port}" in line
    assert "not trusted by the given CA" in line
    # Without any CA, the system's CAs do not know the local one either.
    env = {k: v for k, v in cluster.env.items() if k != "COFRE_CA"}
    bare = it.run_cli(["ls"], env=env, cwd=tmp_path)
    assert bare.code == ExitCode.UNAVAILABLE
    assert "not trusted" in it.one_error_line(bare)


def test_plain_http_is_refused(cluster: Any, it: Any) -> None:
    plain = cluster.url.replace("https://", "http://")
    refused = cluster.cli("ls", env=dict(cluster.env, COFRE_MANAGER=plain))
    assert refused.code == ExitCode.USAGE
    line = it.one_error_line(refused)
    assert "plain HTTP" in line and "--insecure" in line
    # Allowed, a plain request to a TLS service fails with a hint, not a hang or a traceback.
    tried = cluster.cli("ls", "--insecure", env=dict(cluster.env, COFRE_MANAGER=plain))
    assert tried.code == ExitCode.UNAVAILABLE
    warning, error = tried.err.splitlines()
    assert warning.startswith("cofre: warning: plain HTTP")
    assert error.startswith("cofre: error: cannot reach") and cluster.url in error
    # The manager itself never answers plain HTTP.
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"HTTP/1.1 200" not in sock.recv(4096)


def test_insecure_local_up_serves_plain_http_with_a_warning(
    start_local: Any, tmp_path: Path, it: Any
) -> None:
    local = start_local(nodes=3, extra_args=["--insecure"])
    assert local.url.startswith("http://127.0.0.1:") and local.ca == ""
    assert "warning: --insecure" in local.stderr_text()
    assert not (local.data_dir / "tls").exists()
    src = it.random_file(tmp_path / "f", 1000)
    env = dict(it.base_env(), COFRE_DATA_DIR=str(local.data_dir))
    put = it.run_cli(["put", str(src), "--name", "f"], env=env, cwd=tmp_path)
    assert put.code == 0, put.err
    assert "cofre: warning: plain HTTP" in put.err


def test_an_expired_certificate_is_reported_then_replaced_without_a_restart(
    tmp_path: Path, it: Any
) -> None:
    """A manager started with an expired certificate: clients say so; once new files are in
    place it serves the new certificate, same process."""
    ca = tls.new_ca(common_name="test CA", valid_for=timedelta(days=30))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert)
    server = tmp_path / "server.pem"
    expired = tls.issue(
        ca,
        common_name="m",
        ip_addresses=["127.0.0.1"],
        valid_for=timedelta(hours=1),
        now=datetime.now(UTC) - timedelta(days=1),
    )
    _write_pem(server, expired)
    port = it.free_port()
    env = dict(
        it.base_env(),
        COFRE_TOKEN="t",
        COFRE_TLS_CERT_FILE=str(server),
        COFRE_TLS_KEY_FILE=str(server),
    )
    argv = [sys.executable, "-m", "cofre.manager", "--port", str(port)]
    argv += ["--data-dir", str(tmp_path / "m")]
    log = (tmp_path / "manager.log").open("wb")
    manager = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        cli_env = dict(
            it.base_env(),
            COFRE_MANAGER=f"https://127.0.0.1:{port}",
            COFRE_TOKEN="t",
            COFRE_CA=str(ca_file),
        )

        def ls() -> Any:
            return it.run_cli(["ls"], env=cli_env, cwd=tmp_path)

        first = eventually_sync(ls, until=lambda r: "cannot reach" not in r.err, what="manager up")
        assert first.code == ExitCode.UNAVAILABLE
        line = it.one_error_line(first)
        assert f"certificate of 127.0.0.1:{port}" in line and "has expired" in line

        fresh = tls.issue(ca, common_name="m", ip_addresses=["127.0.0.1"], valid_for=timedelta(1))
        _write_pem(server, fresh)
        url = f"https://127.0.0.1:{port}"
        eventually_sync(
            lambda: _served_serial(url),
            until=lambda serial: serial == x509.load_pem_x509_certificate(fresh.cert).serial_number,
            what="the new certificate served",
        )
        after = ls()
        assert after.code == 0, after.err
        assert manager.poll() is None, "the manager was restarted or died"
        assert b"certificate reloaded" in (tmp_path / "manager.log").read_bytes()
    finally:
        manager.terminate()
        manager.wait(timeout=30)
        log.close()


def test_certificates_rotate_under_load_without_a_failed_request(
    start_local: Any, tmp_path: Path, it: Any
) -> None:
    """`local up` with 12-second certificates: they are renewed every 7 or so seconds, each
    would expire 5 seconds later. Transfers run back to back across three renewals (longer
    than one certificate lives): every one succeeds, and no child is restarted."""
    local = start_local(nodes=3, extra_args=["--cert-valid-for", "12"])
    pids = dict(local.state()["pids"])
    src = it.random_file(tmp_path / "f.bin", 6 * 1024 * 1024)
    serials = {_served_serial(local.url)}
    runs = 0
    deadline = time.monotonic() + 120
    while len(serials) < 4:
        assert time.monotonic() < deadline, f"only {len(serials)} certificates in 120 s"
        name = f"rot/{runs}"
        put = local.cli("put", str(src), "--name", name)
        assert put.code == 0, put.err
        get = local.cli("get", name, "-o", str(tmp_path / f"back{runs}"))
        assert get.code == 0, get.err
        assert it.sha256_file(tmp_path / f"back{runs}") == it.sha256_file(src)
        runs += 1
        serials.add(_served_serial(local.url))
    assert local.state()["pids"] == pids, "a child was restarted"
    assert local.stderr_text().count("TLS: certificate valid until") >= 3
    node_log = (local.data_dir / "logs" / "node-0.log").read_text()
    assert "certificate reloaded" in node_log
