#!/usr/bin/env bash
# Builds the benchmarks' Crossplane-configured Go client (main.go here) into .cache/bin/, named
# for a hash of its sources, go.mod, go.sum and the Go toolchain, and prints the binary's path.
# An unchanged client is reused; modules come from the Go module proxy (GOPROXY) on a cold cache.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
command -v go >/dev/null || { echo "build.sh: Go is needed to build the benchmark client (https://go.dev/dl/)" >&2; exit 1; }
key=$( (cd "$here" && cat go.mod go.sum ./*.go && go version) | sha256sum | cut -c1-16)
bin="$root/.cache/bin/bench-goclient-$key"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$root/.cache/bin"
  tmp=$(mktemp "$bin.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  # -mod=readonly: the committed go.sum is the whole truth; a missing entry fails here.
  (cd "$here" && CGO_ENABLED=0 go build -mod=readonly -trimpath -o "$tmp" .) >&2
  chmod +x "$tmp"
  mv -f "$tmp" "$bin"
fi
echo "$bin"
