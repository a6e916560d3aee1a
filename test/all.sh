#!/usr/bin/env bash
# The whole test suite from a fresh clone, in one command: `npm run test:all` (README, "Tests");
# `.ci/run` runs exactly this. It installs everything the tests need — npm packages, the pinned
# PyPI tools in venvs under .cache/, the Go-built binaries under .cache/bin (Crossplane CLI and
# core, the benchmark's Go client, kube-apiserver, kube-controller-manager, kubectl, etcd,
# provider-kubernetes, crane and oras) — then runs typecheck, lint, build, the unit and fetch tests, the fleet
# simulation, the upstream-CLI conformance, a benchmark smoke and the real-control-plane e2e
# suite. Nothing is skipped.
#
#   test/all.sh            # everything
#   test/all.sh --long     # and the long fuzz run (or CI_LONG=1)
#
# Needs: Node.js 20 + npm, python3 with venv, Go >= 1.26 (module proxy reachable), openssl,
# util-linux (unshare, mount), and root for the e2e suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# Goldens are regenerated locally and reviewed, never here: test/support/golden.ts refuses
# UPDATE_GOLDEN=1 when CI is set.
export CI="${CI:-1}"

echo "== toolchain"
node --version
npm --version

echo "== install (npm ci)"
npm ci --no-audit --no-fund

# >>> fetch tests: Python tools >>>
# The fetch program's tests run the official Hugging Face client (`hf download`) against the
# test hub and start moto's S3 server; both come pinned from PyPI into a venv under .cache/
# that is reused when its pins match (the pins are in test/fetch/tools.sh; the venv also
# holds hf_transfer, one of `npm run bench:fetch`'s anchors).
echo "== python tools for the fetch tests"
bash test/fetch/tools.sh venv
# <<< fetch tests: Python tools <<<

# >>> fetch tests: OCI registry peers >>>
# The OCI source's tests run go-containerregistry's registry (`crane registry serve`), crane and
# the ORAS CLI, built from the Go module proxy at the pins in test/oci/versions.env into
# .cache/bin (reused while the pins match; the tests build them too when missing).
echo "== OCI registry tools for the fetch tests"
bash test/oci/build.sh
# <<< fetch tests: OCI registry peers <<<

echo "== typecheck"
npm run typecheck

echo "== lint and format"
npm run lint

echo "== build"
npm run build

echo "== test (README: npm test)"
# Each test notes the goldens it compares; test/check-goldens.ts reads the notes after the
# conformance suite, which compares the rest.
rm -rf .cache/golden-used
npm test

# >>> fleet simulation >>>
# The fault scenarios: a simulated Crossplane control plane, provider-kubernetes and workload
# clusters on virtual time, driving the real Function over gRPC and running the real fetch
# program (dist/, built above) for every prefetch Job. Prints one line per scenario and
# "scenarios: N passed, M failed[, K known product issues (XFAIL)]; bytes lost: B"; fails on
# any failure, any lost byte, or a scenario marked as a known product issue that now passes.
echo "== fleet simulation"
npx tsx test/sim/run.ts
# <<< fleet simulation <<<

# --- conformance ---
# The upstream Crossplane CLI and the core binary its render engine runs, built from the Go
# module proxy at the versions in test/conformance/versions.env (cached under .cache/bin, about
# 6 minutes when cold). Then the Dockerfile's build steps are replayed in a clean copy and the
# result called over gRPC, and the examples are rendered and validated with the upstream CLI
# against the goldens and both packages built with `crossplane xpkg build`.
echo "== conformance: crossplane CLI and core binary"
bash test/conformance/build-crossplane.sh
echo "== conformance: Dockerfile build steps, replayed"
npm run test:dockerfile
echo "== conformance: render, validate and package with the upstream CLI"
npm run test:conformance
echo "== goldens: every file under test/golden compared by a test (unit suite + conformance)"
npx tsx test/check-goldens.ts
# --- end conformance ---

# >>> benchmark smoke >>>
# The compose benchmark end to end at 1 and 10 clusters (compiled server in its own process,
# called by the Crossplane-configured Go client, built from the Go module proxy into .cache/bin
# by test/bench/goclient/build.sh): catches a broken benchmark or codec; figures not checked.
echo "== benchmark smoke"
BENCH_SIZES=1,10 BENCH_QUICK=1 npm run bench:compose
# <<< benchmark smoke <<<

# >>> e2e on a real control plane >>>
# Builds (or reuses, keyed on test/e2e/versions.env) kube-apiserver, kube-controller-manager,
# kubectl, etcd, Crossplane core and provider-kubernetes from the Go module proxy (cold: 47 min
# measured on a 2-core machine shared with other builds; warm: under a second), then runs every
# scenario inside a private network namespace with only loopback. Prints "e2e: N passed, M
# failed" and fails on any failure. Needs root (network and mount namespaces, chroot).
echo "== e2e: real control plane"
npm run test:e2e
# <<< e2e on a real control plane <<<

# Long mode (`test/all.sh --long`, `.ci/run --long` or CI_LONG=1): over 100k fuzz cases (25k per property: the four
# request families and the memo; the memo lifecycles a tenth of that).
if [[ "${1:-}" == "--long" || "${CI_LONG:-}" == "1" ]]; then
  echo "== fuzz, long mode"
  npm run test:fuzz
fi

# Nothing the suite ran may leave the tree changed: a test that writes a fixture, a golden or a
# generated file into the repository is a test whose expectation moved under it. Each gate of
# this file is shown failing in test/gates/gates.test.ts.
echo "== the tree is as checked out"
bash test/gates/clean-tree.sh
