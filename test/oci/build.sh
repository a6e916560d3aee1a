#!/usr/bin/env bash
# Builds the OCI source's test peers from the Go module proxy at the pins in
# test/oci/versions.env, cached under .cache/bin/<tool>-<version>/ and rebuilt only when missing:
#
#   .cache/bin/crane-<v>/crane     go-containerregistry's crane (registry serve, append, export)
#   .cache/bin/oras-<v>/oras       the ORAS CLI (push, pull)
#
#   test/oci/build.sh            # build what is missing
#   FORCE=1 test/oci/build.sh    # rebuild both
#
# Each is built inside its own module as the proxy serves it (its go.mod and go.sum pin every
# dependency), so nothing is resolved here. Needs Go >= 1.24 on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
bin="$root/.cache/bin"
command -v go >/dev/null || {
  echo "oci build: go is not on PATH; it is needed to build crane and oras" >&2
  exit 1
}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly"
export CGO_ENABLED=0
say() { echo "oci build: $*" >&2; }

# The directory MODULE@VERSION was downloaded to, asked outside any module.
module_dir() {
  local tmp dir
  tmp="$(mktemp -d)"
  dir="$(cd "$tmp" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  rmdir "$tmp"
  [[ -n "$dir" && -d "$dir" ]] || {
    say "could not download $1"
    exit 1
  }
  echo "$dir"
}

# build NAME MODULE VERSION PACKAGE [LDFLAGS]
build() {
  local name="$1" mod="$2" version="$3" pkg="$4" ld="${5:-}"
  local out="$bin/$name-$version"
  if [[ "${FORCE:-}" != 1 && -x "$out/$name" ]]; then
    say "$name $version: cached at $out"
    return
  fi
  local s dir
  s=$(date +%s)
  dir="$(module_dir "$mod@$version")"
  mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ld" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  say "$name $version built in $(($(date +%s) - s)) s"
}

build crane "$CRANE_MODULE" "$CRANE_VERSION" ./cmd/crane \
  "-X $CRANE_MODULE/cmd/crane/cmd.Version=$CRANE_VERSION"
build oras "$ORAS_MODULE" "$ORAS_VERSION" ./cmd/oras \
  "-X $ORAS_MODULE/internal/version.Version=${ORAS_VERSION#v} -X $ORAS_MODULE/internal/version.BuildMetadata="
