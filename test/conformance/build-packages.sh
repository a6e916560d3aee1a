#!/usr/bin/env bash
# Stages the Function and Configuration packages into clean folders and builds each with the
# upstream `crossplane xpkg build` (which reads every YAML file under its package root, so the
# repository itself cannot be the root).
#
#   test/conformance/build-packages.sh [OUT_DIR]      # default OUT_DIR: .cache/packages
#
# Writes OUT_DIR/function-modelcache.xpkg and OUT_DIR/configuration-modelcache.xpkg, and keeps
# the staged roots in OUT_DIR/staged/{function,configuration} for inspection. The Function is
# built without an embedded runtime image (no image builder runs here); to ship it, add
# --embed-runtime-image=<image built from ./Dockerfile>.
#
# The CLI is test/conformance/build-crossplane.sh's, or $CROSSPLANE_CLI when set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

cli="${CROSSPLANE_CLI:-$root/.cache/bin/cli-$CROSSPLANE_CLI_VERSION/crossplane}"
if [[ ! -x "$cli" ]]; then
  echo "build-packages: no crossplane CLI at $cli; run test/conformance/build-crossplane.sh" >&2
  exit 1
fi

out="$(mkdir -p "${1:-$root/.cache/packages}" && cd "${1:-$root/.cache/packages}" && pwd)"
staged="$out/staged"
rm -rf "$staged"
mkdir -p "$staged/function" "$staged/configuration"

# Function: its metadata and the input CRD.
cp "$root/package/function/crossplane.yaml" "$staged/function/"
cp -R "$root/package/function/input" "$staged/function/input"

# Configuration: its metadata, every XRD and every Composition. Globs pick up each apis/<kind>/
# folder, so a new kind is packaged without touching this script.
cp "$root/package/configuration/crossplane.yaml" "$staged/configuration/"
shopt -s nullglob
xrds=("$root"/apis/*/definition.yaml)
compositions=("$root"/compositions/*.yaml)
if ((${#xrds[@]} == 0 || ${#compositions[@]} == 0)); then
  echo "build-packages: no XRDs under apis/*/definition.yaml or no compositions/*.yaml" >&2
  exit 1
fi
for xrd in "${xrds[@]}"; do
  kind_dir="$(basename "$(dirname "$xrd")")"
  mkdir -p "$staged/configuration/apis/$kind_dir"
  cp "$xrd" "$staged/configuration/apis/$kind_dir/definition.yaml"
done
mkdir -p "$staged/configuration/compositions"
cp "${compositions[@]}" "$staged/configuration/compositions/"

# --examples-root defaults to ./examples relative to the working directory, and an existing folder
# (even an empty one) adds an examples layer: point it at a path that does not exist.
no_examples="$staged/no-examples"
for pkg in function configuration; do
  name="$pkg-modelcache"
  rm -f "$out/$name.xpkg"
  "$cli" xpkg build --package-root "$staged/$pkg" --examples-root "$no_examples" \
    --package-file "$out/$name.xpkg"
  echo "$out/$name.xpkg"
done
