#!/usr/bin/env bash
# CI's last gate (test/all.sh): nothing the suite ran may have changed the tree. A test that
# writes a fixture, a golden or a generated file into the repository is a test whose
# expectation moved under it. Run in the repository to check; exits 1 listing what changed, or
# when git cannot tell (a gate that cannot look must not pass).
set -uo pipefail
if ! changed="$(git status --porcelain 2>/dev/null)"; then
  echo "clean-tree: git status failed: cannot tell whether the suite changed the tree" >&2
  exit 1
fi
if [ -n "$changed" ]; then
  printf '%s\n' "$changed"
  echo "clean-tree: the suite changed the tree (above): a test wrote into the repository" >&2
  exit 1
fi
echo "clean-tree: the tree is as checked out"
