#!/usr/bin/env bash
# Installs and configures what the dev cluster needs on this host. Idempotent; needs root.
set -euo pipefail

pkgs=(podman runc containerd containernetworking-plugins debootstrap iptables conntrack openssl
  iproute2 procps util-linux make)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's containerd package starts a system instance; the dev cluster runs its own.
if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi

# Pods are routed between the nodes' bridges by the host, and kube-proxy's rules must also
# see bridged traffic (a pod reaching a Service backed by a pod on the same bridge).
sysctl -qw net.ipv4.ip_forward=1
modprobe br_netfilter 2>/dev/null || true
if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
fi
sysctl -qw net.ipv4.conf.all.route_localnet=1 || true
