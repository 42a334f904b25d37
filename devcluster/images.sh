#!/usr/bin/env bash
# Local images for the dev cluster; nothing is pulled from a container registry.
#   images.sh base           python:3.11-slim-bookworm stand-in (Debian bookworm's python3 is 3.11)
#   images.sh pause BINDIR   the pod sandbox image from the locally built pause binary
#   images.sh build TAG DIR  podman build of DIR/Dockerfile as TAG (base image made first)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="$here/containers.conf"
cache="$HOME/.cache/cofre/images"
base_tag="docker.io/library/python:3.11-slim-bookworm"
pause_tag="localhost/pause:cofre"
mkdir -p "$cache"

build_base() {
  if podman image exists "$base_tag"; then return 0; fi
  local tarball="$cache/python-3.11-slim-bookworm.tar"
  if [[ ! -s "$tarball" ]]; then
    echo "building the python:3.11-slim-bookworm stand-in with debootstrap (about a minute)" >&2
    local root
    root="$(mktemp -d "$cache/rootfs.XXXXXX")"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$root" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { echo "debootstrap failed, see $cache/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
    # Behave like the official image: python3/pip on /usr/local/bin, pip allowed system-wide.
    mkdir -p "$root/usr/local/bin"
    for n in python3 python; do ln -sf /usr/bin/python3 "$root/usr/local/bin/$n"; done
    for n in pip3 pip; do ln -sf /usr/bin/pip3 "$root/usr/local/bin/$n"; done
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  podman import -q --change 'ENV=LANG=C.UTF-8' \
    --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD=["python3"]' "$tarball" "$base_tag" >/dev/null
  podman tag "$base_tag" localhost/python:3.11-slim-bookworm
}

build_pause() {
  local bindir="$1"
  if podman image exists "$pause_tag"; then return 0; fi
  local root
  root="$(mktemp -d)"
  install -m 0755 "$bindir/pause" "$root/pause"
  tar -C "$root" -c . | podman import -q --change 'ENTRYPOINT=["/pause"]' - "$pause_tag" >/dev/null
  rm -rf "$root"
}

case "${1:-}" in
  base) build_base ;;
  pause) build_pause "$2" ;;
  build)
    tag="$2" dir="$3"
    if [[ ! -f "$dir/Dockerfile" ]]; then
      echo "no Dockerfile in $dir: nothing to build for $tag" >&2
      exit 1
    fi
    build_base
    # --pull=never: FROM lines resolve to local images only. The host's CA bundle lets
    # pip inside the build reach PyPI over TLS.
    podman build --pull=never -q -t "$tag" \
      -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
      -f "$dir/Dockerfile" "$dir" >/dev/null
    echo "built $tag" >&2
    ;;
  *) echo "usage: images.sh base | pause BINDIR | build TAG DIR" >&2; exit 2 ;;
esac
