"""The cluster's CA, certificates and kubeconfigs, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devcluster import config

DAYS = "3650"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key(path: Path) -> None:
    if not path.exists():
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
        )
        path.chmod(0o600)


def _cert(
    pki: Path,
    name: str,
    cn: str,
    org: str | None = None,
    sans: list[str] | None = None,
    server: bool = False,
) -> None:
    """Issue NAME.crt/NAME.key signed by the cluster CA, unless it already exists."""
    crt, key, csr = pki / f"{name}.crt", pki / f"{name}.key", pki / f"{name}.csr"
    if crt.exists():
        return
    _key(key)
    subject = f"/CN={cn}" + (f"/O={org}" if org else "")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    extfile = pki / f"{name}.ext"
    extfile.write_text("\n".join(ext) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(pki / "ca.crt"),
        "-CAkey",
        str(pki / "ca.key"),
        "-CAcreateserial",
        "-days",
        DAYS,
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(crt),
    )
    csr.unlink()
    extfile.unlink()


def ensure_pki(pki: Path, node_specs: list[config.NodeSpec]) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        _key(pki / "ca.key")
        _openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            str(pki / "ca.key"),
            "-subj",
            "/CN=cofre-devcluster-ca",
            "-days",
            DAYS,
            "-sha256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            str(pki / "ca.crt"),
        )
    # Service-account token signing key pair.
    _key(pki / "sa.key")
    if not (pki / "sa.pub").exists():
        _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    api_sans = [
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        f"DNS:kubernetes.default.svc.{config.CLUSTER_DOMAIN}",
        "DNS:localhost",
        "IP:127.0.0.1",
        f"IP:{config.KUBERNETES_SERVICE_IP}",
        f"IP:{config.API_IP}",
    ]
    _cert(pki, "apiserver", "kube-apiserver", sans=api_sans, server=True)
    _cert(pki, "admin", "cofre-admin", org="system:masters")
    _cert(pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters")
    _cert(pki, "controller-manager", "system:kube-controller-manager")
    _cert(pki, "scheduler", "system:kube-scheduler")
    _cert(pki, "kube-proxy", "system:kube-proxy")
    _cert(pki, "coredns", "cofre-coredns", org="system:masters")
    for node in node_specs:
        _cert(pki, f"{node.name}", f"system:node:{node.name}", org="system:nodes")
        _cert(
            pki,
            f"{node.name}-serving",
            f"system:node:{node.name}",
            sans=[f"IP:{node.ip}", f"DNS:{node.name}"],
            server=True,
        )


def write_kubeconfig(path: Path, pki: Path, cert_name: str, server: str | None = None) -> None:
    server = server or f"https://{config.API_IP}:{config.API_PORT}"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: cofre-dev
  cluster:
    server: {server}
    certificate-authority: {pki / "ca.crt"}
users:
- name: {cert_name}
  user:
    client-certificate: {pki / (cert_name + ".crt")}
    client-key: {pki / (cert_name + ".key")}
contexts:
- name: cofre-dev
  context:
    cluster: cofre-dev
    user: {cert_name}
    namespace: default
current-context: cofre-dev
"""
    )
    path.chmod(0o600)
