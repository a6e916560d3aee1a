#!/usr/bin/env bash
# The outside tools the fetch tests and `npm run bench:fetch` run, pinned and cached under
# .cache/ keyed on the pins (reused while they match, rebuilt when a pin changes):
#
#   test/fetch/tools.sh venv    the fetch tests' venv: `hf` (huggingface_hub), `moto_server`
#                               (moto[server]) and hf_transfer, Hugging Face's Rust downloader
#                               the benchmark calls on the resolve URLs (test/all.sh runs this)
#   test/fetch/tools.sh bench   that venv, the AWS CLI (its own venv: awscli pins botocore
#                               exactly, moto must keep its own) and s5cmd built from the Go
#                               module proxy; prints `name=path` lines for the benchmark
#
# Needs python3 with venv; `bench` also needs Go (the module proxy reachable when cold).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/.cache"
mkdir -p "$cache"

FETCH_VENV="$cache/fetch-venv"
FETCH_PY_PINS="huggingface_hub==2.4.0 moto[server]==5.2.5 hf_transfer==0.1.9"
AWSCLI_PIN="awscli==1.46.2"
S5CMD_MODULE="github.com/peak/s5cmd/v2"
S5CMD_VERSION="v2.3.0"

say() { echo "fetch tools: $*" >&2; }

# Two runs at once (the tests beside a benchmark) would build into the same folders.
exec 9>"$cache/.fetch-tools.lock"
if command -v flock >/dev/null; then flock 9; fi

# venv DIR PINS...: a venv holding exactly PINS, rebuilt when its recorded pins differ.
venv() {
  local dir="$1"
  shift
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pins" 2>/dev/null)" = "$*" ]; then return; fi
  say "installing $* into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$*" >"$dir/.pins"
}

fetch_venv() {
  # shellcheck disable=SC2086 # the pins are a word list
  venv "$FETCH_VENV" $FETCH_PY_PINS
  "$FETCH_VENV/bin/python" -c 'import huggingface_hub, moto, hf_transfer; print("huggingface_hub", huggingface_hub.__version__, "moto", moto.__version__, "hf_transfer", hf_transfer.__version__)' >&2
}

# s5cmd from a generated module that requires it at exactly the pin: `go install pkg@version`
# asks the proxy for the module's version list (deprecations), which this proxy does not serve.
s5cmd() {
  local out="$cache/bench/s5cmd-$S5CMD_VERSION/s5cmd"
  if [ -x "$out" ]; then
    echo "$out"
    return
  fi
  command -v go >/dev/null || {
    say "go is not on PATH; it is needed to build s5cmd"
    exit 1
  }
  local wrapper="$cache/build/s5cmd-$S5CMD_VERSION" start
  start=$(date +%s)
  say "building $S5CMD_MODULE@$S5CMD_VERSION (Go module proxy)"
  rm -rf "$wrapper"
  mkdir -p "$wrapper" "$(dirname "$out")"
  printf 'module modelcache.local/s5cmd-build\n\ngo 1.24\n' >"$wrapper/go.mod"
  printf '//go:build tools\n\n// Package tools pins the command to build.\npackage tools\n\nimport _ "%s"\n' \
    "$S5CMD_MODULE" >"$wrapper/tools.go"
  (
    cd "$wrapper"
    export GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0
    go get "$S5CMD_MODULE@$S5CMD_VERSION" >&2
    go mod tidy >&2
    got="$(go list -m -f '{{.Version}}' "$S5CMD_MODULE")"
    if [ "$got" != "$S5CMD_VERSION" ]; then
      say "$S5CMD_MODULE resolved to $got, want $S5CMD_VERSION"
      exit 1
    fi
    go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$S5CMD_MODULE"
  )
  mv "$out.tmp" "$out"
  say "s5cmd $S5CMD_VERSION built in $(($(date +%s) - start)) s"
  echo "$out"
}

case "${1:-}" in
  venv) fetch_venv ;;
  bench)
    fetch_venv
    venv "$cache/awscli-venv" "$AWSCLI_PIN"
    echo "venv=$FETCH_VENV"
    echo "aws=$cache/awscli-venv/bin/aws"
    echo "s5cmd=$(s5cmd)"
    ;;
  *)
    echo "usage: $0 venv|bench" >&2
    exit 2
    ;;
esac
