#!/usr/bin/env bash
# Builds SeaweedFS's `weed` once from the Go module proxy at a pinned version and caches it in
# ~/.cache/cofre/seaweedfs/<version>/weed (the benchmark's peer). Prints the binary's path on the
# last line of stdout. COFRE_WEED naming an existing executable is used as it is.
set -euo pipefail
# SeaweedFS 4.53: the module publishes no tags, so the pseudo-version of that commit is pinned.
WEED_MODULE=github.com/seaweedfs/seaweedfs
WEED_VERSION="${WEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"

if [[ -n "${COFRE_WEED:-}" ]]; then
  [[ -x "$COFRE_WEED" ]] || { echo "COFRE_WEED=$COFRE_WEED is not executable" >&2; exit 1; }
  echo "$COFRE_WEED"
  exit 0
fi
cache="${COFRE_WEED_CACHE:-$HOME/.cache/cofre/seaweedfs/$WEED_VERSION}"
mkdir -p "$cache"
# One build at a time: a second caller waits for the first and then finds the binary.
exec 9>"$cache/.lock"
flock 9
if [[ -x "$cache/weed" ]]; then
  echo "$cache/weed"
  exit 0
fi
echo "building SeaweedFS $WEED_VERSION into $cache (a long Go build)" >&2

if ! command -v go >/dev/null; then
  [[ -x /usr/local/go/bin/go ]] || { echo "no Go toolchain (go) found" >&2; exit 1; }
  export PATH="/usr/local/go/bin:$PATH"
fi
export GOMODCACHE="${GOMODCACHE:-$HOME/go/pkg/mod}" GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=mod" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
src="$cache/src"
mkdir -p "$src"

# `go install pkg@version` refuses modules with replace directives (SeaweedFS has some), so a
# wrapper module requires SeaweedFS and repeats its replaces and its go.sum.
dir="$(go mod download -json "$WEED_MODULE@$WEED_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
[[ -d "$dir" ]] || { echo "could not download $WEED_MODULE@$WEED_VERSION" >&2; exit 1; }
{
  echo "module cofre.local/bench/weed"
  grep -E '^go ' "$dir/go.mod"
  echo "require $WEED_MODULE $WEED_VERSION"
  grep -E '^replace ' "$dir/go.mod" || true
} >"$src/go.mod"
cp "$dir/go.sum" "$src/go.sum"
chmod u+w "$src/go.sum" "$src/go.mod"
cd "$src"
nice -n 10 go build -p 2 -ldflags "-s -w" -o "$cache/weed.tmp" "$WEED_MODULE/weed"
mv "$cache/weed.tmp" "$cache/weed"
echo "$cache/weed"
