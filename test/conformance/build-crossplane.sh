#!/usr/bin/env bash
# Builds the upstream Crossplane CLI and the core binary its render engine runs, from the Go
# module proxy, at the versions pinned in versions.env. Binaries are cached under
# .cache/bin/cli-<version>/crossplane and .cache/bin/core-<version>/crossplane and rebuilt only
# when missing, with Crossplane's own CRDs beside the core (.cache/bin/core-<version>/crds). Prints
# the two binary paths on the last two lines (CLI first, core second).
#
#   test/conformance/build-crossplane.sh          # build what is missing
#   FORCE=1 test/conformance/build-crossplane.sh  # rebuild both
#
# Needs Go >= the CLI's go directive (1.26) and the Go module proxy. Nothing upstream is committed:
# the wrapper modules are generated under .cache/build at build time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

bin="$root/.cache/bin"
cli_bin="$bin/cli-$CROSSPLANE_CLI_VERSION/crossplane"
core_bin="$bin/core-$CROSSPLANE_CORE_VERSION/crossplane"
# The version both binaries report (`crossplane version`); upstream sets it the same way.
version_var=github.com/crossplane/crossplane-runtime/v2/pkg/version.version

command -v go >/dev/null || {
  echo "build-crossplane: go is not on PATH; it is needed to build the Crossplane CLI" >&2
  exit 1
}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED=0

# Two runs at once (CI beside a developer, or two suites) would share the wrapper folders and the
# .tmp outputs and break each other's builds (seen: "mv: cannot stat .../crossplane.tmp"). The
# second waits for the first, then finds the binaries cached.
mkdir -p "$bin"
exec 9>"$bin/.build-crossplane.lock"
if command -v flock >/dev/null; then
  flock 9
fi

elapsed() { echo $(($(date +%s) - $1)); }

# build_in_wrapper NAME VERSION OUT PACKAGE MODULE@VERSION...
# Builds PACKAGE into OUT from a generated module under .cache/build/NAME-VERSION that requires the
# given modules at exact versions. `go install pkg@version` is not used: it refuses modules with
# replace directives (crossplane/crossplane replaces apis/v2 => ./apis) and asks the proxy for the
# module's version list to look for deprecations, which this proxy does not serve.
build_in_wrapper() {
  local name="$1" version="$2" out="$3" pkg="$4"
  shift 4
  local start wrapper
  if [[ -x "$out" && "${FORCE:-}" != 1 ]]; then
    echo "crossplane $name $version: cached at $out" >&2
    return
  fi
  start=$(date +%s)
  echo "crossplane $name $version: building $pkg" >&2
  wrapper="$root/.cache/build/$name-$version"
  rm -rf "$wrapper"
  mkdir -p "$wrapper" "$(dirname "$out")"
  printf 'module modelcache.local/crossplane-%s-build\n\ngo 1.25\n' "$name" >"$wrapper/go.mod"
  printf '//go:build tools\n\n// Package tools pins the command to build.\npackage tools\n\nimport _ "%s"\n' \
    "$pkg" >"$wrapper/tools.go"
  (
    cd "$wrapper"
    go get "$@"
    go mod tidy
    local want mod got
    for want in "$@"; do
      mod="${want%@*}"
      got="$(go list -m -f '{{.Version}}' "$mod")"
      if [[ "$got" != "${want##*@}" ]]; then
        echo "build-crossplane: $mod resolved to $got, want ${want##*@}" >&2
        exit 1
      fi
    done
    go build -trimpath -ldflags "-s -w -X=$version_var=$version" -o "$out.tmp" "$pkg"
  )
  mv "$out.tmp" "$out"
  echo "crossplane $name $version: built in $(elapsed "$start") s" >&2
}

build_in_wrapper cli "$CROSSPLANE_CLI_VERSION" "$cli_bin" "$CROSSPLANE_CLI_MODULE/cmd/crossplane" \
  "$CROSSPLANE_CLI_MODULE@$CROSSPLANE_CLI_VERSION"
# The core's own go.mod pins apis/v2 at a pseudo-version and replaces it with ./apis; requiring
# the released apis/v2 at the same tag builds the code that tag was cut from.
build_in_wrapper core "$CROSSPLANE_CORE_VERSION" "$core_bin" "$CROSSPLANE_CORE_MODULE/cmd/crossplane" \
  "$CROSSPLANE_CORE_MODULE@$CROSSPLANE_CORE_VERSION" \
  "$CROSSPLANE_CORE_APIS_MODULE@$CROSSPLANE_CORE_VERSION"

# Crossplane's own CRDs (Composition, XRD, ...) at the core's version, from the same module
# download: `crossplane resource validate` needs them to validate Compositions and XRDs, and would
# otherwise try to pull the Crossplane image for them.
crds="$(dirname "$core_bin")/crds"
if [[ ! -d "$crds" || "${FORCE:-}" == 1 ]]; then
  # Outside any module, so the repository's own setup plays no part.
  nomod="$(mktemp -d)"
  mod_dir="$(cd "$nomod" && go mod download -json \
    "$CROSSPLANE_CORE_MODULE@$CROSSPLANE_CORE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  rmdir "$nomod"
  if [[ ! -d "$mod_dir/cluster/crds" ]]; then
    echo "build-crossplane: no cluster/crds in $CROSSPLANE_CORE_MODULE@$CROSSPLANE_CORE_VERSION" >&2
    exit 1
  fi
  rm -rf "$crds.tmp"
  mkdir -p "$crds.tmp"
  cp "$mod_dir"/cluster/crds/*.yaml "$crds.tmp/"
  chmod u+w "$crds.tmp"/*.yaml
  rm -rf "$crds"
  mv "$crds.tmp" "$crds"
fi

echo "$cli_bin"
echo "$core_bin"
